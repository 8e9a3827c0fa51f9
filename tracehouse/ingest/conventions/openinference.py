"""OpenInference (Arize Phoenix) attributes: ``openinference.span.kind``, ``llm.*``, ``input.value``."""

from __future__ import annotations

SPAN_KIND = "openinference.span.kind"
SPAN_KIND_TYPES = {
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "LLM": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT",
    "TOOL": "TOOL",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
MODEL_NAME = "llm.model_name"
INVOCATION_PARAMETERS = "llm.invocation_parameters"  # JSON object text
INVOCATION_PARAMETERS_PREFIX = "llm.invocation_parameters."
COST_TOTAL = "llm.cost.total"
INPUT = "input.value"
OUTPUT = "output.value"
INPUT_MESSAGES_PREFIX = "llm.input_messages"
OUTPUT_MESSAGES_PREFIX = "llm.output_messages"

IO_KEYS = (INPUT, OUTPUT)
IO_PREFIXES = (INPUT_MESSAGES_PREFIX, OUTPUT_MESSAGES_PREFIX)
