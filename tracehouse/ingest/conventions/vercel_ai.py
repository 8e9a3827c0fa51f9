"""Vercel AI SDK spans (instrumentation scope ``ai``)."""

from __future__ import annotations

SCOPE = "ai"
MODEL_ID = "ai.model.id"
OPERATION_KEYS = ("operation.name", "ai.operationId")
OPERATION_ID = "ai.operationId"
FUNCTION_ID = "ai.telemetry.functionId"
TOOL_CALL_NAME = "ai.toolCall.name"
MODEL_CALLS = {
    "ai.generateText.doGenerate": "GENERATION",
    "ai.streamText.doStream": "GENERATION",
    "ai.generateObject.doGenerate": "GENERATION",
    "ai.streamObject.doStream": "GENERATION",
    "ai.embedMany.doEmbed": "EMBEDDING",
    "ai.embed.doEmbed": "EMBEDDING",
}
OTHER_OPERATIONS = {"ai.toolCall": "TOOL"}
AGENT_OPERATIONS = frozenset({"invoke_agent", "agent_step"})  # no model/usage/cost: duplicates

INPUT_KEYS = ("ai.prompt.messages", "ai.prompt", "ai.toolCall.args")
RESPONSE_TEXT = "ai.response.text"
RESPONSE_TOOL_CALLS = "ai.response.toolCalls"
OUTPUT_KEYS = (
    "ai.result.text",
    "ai.toolCall.result",
    "ai.response.object",
    "ai.result.object",
    "ai.response.toolCalls",
    "ai.result.toolCalls",
)
MS_TO_FIRST_CHUNK = ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
PROMPT = "ai.telemetry.metadata.langfusePrompt"  # JSON {name, version}
METADATA_EXCLUDED = frozenset(
    {
        "ai.telemetry.metadata.userId",
        "ai.telemetry.metadata.sessionId",
        "ai.telemetry.metadata.tags",
        "ai.telemetry.metadata.langfusePrompt",
    }
)

# Model parameters: fixed object of (name, attribute keys tried in order).
MODEL_PARAMETERS = (
    ("maxSteps", ("ai.settings.maxSteps",)),
    ("toolChoice", ("ai.prompt.toolChoice",)),
    ("maxTokens", ("gen_ai.request.max_tokens",)),
    ("finishReason", ("gen_ai.response.finish_reasons", "gen_ai.finishReason")),
    ("system", ("gen_ai.system", "ai.model.provider")),
    ("maxRetries", ("ai.settings.maxRetries",)),
    ("mode", ("ai.settings.mode",)),
    ("temperature", ("gen_ai.request.temperature",)),
    ("service_tier", ("gen_ai.request.service_tier",)),
)

# Usage: canonical key -> attribute keys tried in order.
USAGE = (
    ("input", ("gen_ai.usage.prompt_tokens", "gen_ai.usage.input_tokens")),
    ("output", ("gen_ai.usage.completion_tokens", "gen_ai.usage.output_tokens")),
    ("total", ("ai.usage.tokens",)),
    ("input_cached_tokens", ("ai.usage.cachedInputTokens",)),
    ("output_reasoning_tokens", ("ai.usage.reasoningTokens",)),
)
PROVIDER_METADATA = "ai.response.providerMetadata"  # JSON text
# (provider, path inside the provider's object, usage key); earlier sources win.
PROVIDER_USAGE = (
    ("openai", ("cachedPromptTokens",), "input_cached_tokens"),
    ("openai", ("acceptedPredictionTokens",), "accepted_prediction_tokens"),
    ("openai", ("rejectedPredictionTokens",), "rejected_prediction_tokens"),
    ("openai", ("reasoningTokens",), "output_reasoning_tokens"),
    ("anthropic", ("usage", "cache_creation_input_tokens"), "input_cache_creation"),
    ("anthropic", ("usage", "cache_read_input_tokens"), "input_cached_tokens"),
    (
        "anthropic",
        ("usage", "cache_creation", "ephemeral_5m_input_tokens"),
        "input_cache_creation_5m",
    ),
    (
        "anthropic",
        ("usage", "cache_creation", "ephemeral_1h_input_tokens"),
        "input_cache_creation_1h",
    ),
    ("bedrock", ("usage", "cacheReadInputTokens"), "input_cache_read"),
    ("bedrock", ("usage", "cacheWriteInputTokens"), "input_cache_write"),
    ("bedrock", ("usage", "cacheCreationInputTokens"), "input_cache_creation"),
)
INPUT_DEDUCTIONS = (
    "input_cached_tokens",
    "input_cache_creation",
    "input_cache_creation_5m",
    "input_cache_creation_1h",
    "input_cache_read",
)

IO_KEYS = (*INPUT_KEYS, RESPONSE_TEXT, *OUTPUT_KEYS)
IO_PREFIXES = ("ai.telemetry.metadata",)
