"""Smaller producers: Google ADK, LiveKit, MLflow, Genkit, Flue (key lists only)."""

from __future__ import annotations

GENKIT_SCOPE = "genkit-tracer"
GENKIT_INPUT = "genkit:input"
GENKIT_OUTPUT = "genkit:output"
GENKIT_NAME = "genkit:name"
GENKIT_SUBTYPE = "genkit:metadata:subtype"
GENKIT_TYPES = {
    "model": "GENERATION",
    "background-model": "GENERATION",
    "embedder": "EMBEDDING",
    "tool": "TOOL",
    "tool.v2": "TOOL",
    "retriever": "RETRIEVER",
    "evaluator": "EVALUATOR",
}
FLUE_SCOPE = "@flue/opentelemetry"
FLUE_INPUT = ("flue.turn.input", "flue.tool.arguments", "flue.task.prompt", "flue.workflow.payload")
FLUE_OUTPUT = (
    "flue.turn.output", "flue.tool.result", "flue.task.result", "flue.operation.result",
    "flue.workflow.result",
)  # fmt: skip
FLUE_TOOL_KEYS = ("flue.tool.name", "flue.tool.call_id")
FLUE_AGENT_KEYS = ("flue.task.id", "flue.task.agent")

LIVEKIT_SCOPE = "livekit-agents"
LIVEKIT_TYPES = {"agent_turn": "AGENT", "start_agent_activity": "AGENT", "function_tool": "TOOL"}
LIVEKIT_DEBUG_SPANS = frozenset(
    {
        "user_speaking", "eou_detection", "llm_request_run", "tts_node", "tts_request",
        "tts_request_run", "tts_stream_adapter", "agent_speaking", "drain_agent_activity",
        "on_exit", "on_enter", "llm_fallback_adapter", "tts_fallback_adapter",
        "start_agent_activity",
    }
)  # fmt: skip
LIVEKIT_INPUT = ("lk.input_text", "lk.user_transcript", "lk.chat_ctx")
LIVEKIT_OUTPUT = ("lk.function_tool.output", "lk.response.text")

ADK_INPUT = ("gcp.vertex.agent.llm_request", "gcp.vertex.agent.tool_call_args")
ADK_RESPONSE = "gcp.vertex.agent.llm_response"
ADK_OUTPUT = ("gcp.vertex.agent.llm_response", "gcp.vertex.agent.tool_response")

MLFLOW_INPUT = "mlflow.spanInputs"
MLFLOW_OUTPUT = "mlflow.spanOutputs"

# Legacy Semantic Kernel: the prompt and completion ride on span events.
SK_PROMPT_EVENT = "gen_ai.content.prompt"
SK_COMPLETION_EVENT = "gen_ai.content.completion"

PYDANTIC_AI_SCOPE = "pydantic-ai"
PYDANTIC_AI_MESSAGES = "pydantic_ai.all_messages"
PYDANTIC_AI_RESULT = "final_result"
PYDANTIC_AI_TOOL_INPUT = "tool_arguments"
PYDANTIC_AI_TOOL_OUTPUT = "tool_response"

MODEL_CONFIG = "model_config"  # JSON object text: model parameters
PLAIN_MODEL = "model"

IO_KEYS = (
    *LIVEKIT_INPUT, *LIVEKIT_OUTPUT, *ADK_INPUT, *ADK_OUTPUT, MLFLOW_INPUT, MLFLOW_OUTPUT,
    GENKIT_INPUT, GENKIT_OUTPUT, PYDANTIC_AI_RESULT, PYDANTIC_AI_MESSAGES, *FLUE_INPUT,
    *FLUE_OUTPUT,
)  # fmt: skip
