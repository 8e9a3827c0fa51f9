"""OpenTelemetry GenAI semantic conventions (``gen_ai.*``)."""

from __future__ import annotations

OPERATION = "gen_ai.operation.name"
OPERATION_TYPES = {
    **dict.fromkeys(
        ("chat", "completion", "text_completion", "generate_content", "generate"), "GENERATION"
    ),
    "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "execute_tool": "TOOL",
}
TOOL_KEYS = ("gen_ai.tool.name", "gen_ai.tool.call.id")  # any present -> TOOL
TOOL_NAME = "gen_ai.tool.name"

REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_PREFIX = "gen_ai.request."  # model parameters (fallback source)
COST = "gen_ai.usage.cost"

# Messages: attributes (semconv >= 1.37), span events, and flattened prompt/completion keys.
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
PROMPT_PREFIX = "gen_ai.prompt"
COMPLETION_PREFIX = "gen_ai.completion"

# Generic usage rule: every numeric ``gen_ai.usage.<k>`` / ``llm.token_count.<k>``, prefix stripped,
# then these aliases (first present wins) fold into the canonical keys.
USAGE_PREFIXES = ("gen_ai.usage.", "llm.token_count.")
USAGE_INPUT = ("prompt_tokens", "input_tokens", "prompt")
USAGE_OUTPUT = ("completion_tokens", "output_tokens", "completion")
USAGE_TOTAL = ("total_tokens", "total")
USAGE_CACHE_READ = (
    "cache_read.input_tokens",
    "cache_read_input_tokens",
    "cache_read_tokens",
    "details.cache_read_tokens",
    "details.cache_read_input_tokens",
    "prompt_details.cache_read",
    "input_cached_tokens",
)
USAGE_CACHE_WRITE = (
    "cache_creation.input_tokens",
    "cache_creation_input_tokens",
    "cache_write_tokens",
    "details.cache_write_tokens",
    "details.cache_creation_input_tokens",
    "prompt_details.cache_write",
    "input_cache_creation",
)
USAGE_REASONING = ("reasoning.output_tokens", "completion_details.reasoning")
USAGE_AUDIO = ("completion_details.audio",)

IO_KEYS = (INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS, TOOL_ARGUMENTS, TOOL_RESULT)
IO_PREFIXES = (PROMPT_PREFIX, COMPLETION_PREFIX)
