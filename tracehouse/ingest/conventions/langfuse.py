"""Langfuse SDK attributes (``langfuse.*``): the first source for almost every field."""

from __future__ import annotations

SCOPE_PREFIX = "langfuse-sdk"  # scopes of the Langfuse SDKs: no ``metadata.attributes``

TYPE = "langfuse.observation.type"
TYPES = {
    t: t.upper()
    for t in (
        "span", "generation", "event", "embedding", "agent",
        "tool", "chain", "retriever", "guardrail", "evaluator",
    )
}  # fmt: skip
# Python SDK <= 3.3 sent generations as "span"; any of these attributes means GENERATION.
PY_GENERATION_HINTS = (
    "langfuse.observation.model.name",
    "langfuse.observation.cost_details",
    "langfuse.observation.usage_details",
    "langfuse.observation.completion_start_time",
    "langfuse.observation.model.parameters",
    "langfuse.observation.prompt.name",
    "langfuse.observation.prompt.version",
)

INPUT = "langfuse.observation.input"
OUTPUT = "langfuse.observation.output"
TRACE_INPUT = "langfuse.trace.input"
TRACE_OUTPUT = "langfuse.trace.output"
TRACE_NAME = "langfuse.trace.name"

LEVEL = "langfuse.observation.level"
LEVEL_ALIASES = {
    **dict.fromkeys(("DEBUG", "TRACE", "VERBOSE"), "DEBUG"),
    **dict.fromkeys(("DEFAULT", "INFO", "LOG", "NOTICE", "OK", "SUCCESS"), "DEFAULT"),
    **dict.fromkeys(("WARNING", "WARN"), "WARNING"),
    **dict.fromkeys(("ERROR", "FATAL", "CRITICAL"), "ERROR"),
}
STATUS_MESSAGE = "langfuse.observation.status_message"

MODEL = "langfuse.observation.model.name"
MODEL_PARAMETERS = "langfuse.observation.model.parameters"
USAGE_DETAILS = "langfuse.observation.usage_details"
COST_DETAILS = "langfuse.observation.cost_details"
COMPLETION_START_TIME = "langfuse.observation.completion_start_time"
PROMPT_KEYS = (
    ("langfuse.observation.prompt.name", "langfuse.observation.prompt.version"),
    ("langfuse.prompt.name", "langfuse.prompt.version"),
)

# Experiment linkage (the SDKs' experiment runners; propagated to every span of an item).
EXPERIMENT_ID = "langfuse.experiment.id"
EXPERIMENT_ITEM_ID = "langfuse.experiment.item.id"
EXPERIMENT_ROOT = "langfuse.experiment.item.root_observation_id"
EXPERIMENT_ITEM_VERSION = "langfuse.experiment.item.version"
EXPERIMENT_TEXT = (
    ("name", "langfuse.experiment.name"),
    ("description", "langfuse.experiment.description"),
    ("datasetId", "langfuse.experiment.dataset.id"),
)
EXPERIMENT_JSON = (  # JSON text, or per-key attributes under "<key>."
    ("metadata", "langfuse.experiment.metadata"),
    ("itemMetadata", "langfuse.experiment.item.metadata"),
)
EXPERIMENT_EXPECTED_OUTPUT = "langfuse.experiment.item.expected_output"

VERSION = "langfuse.version"
RELEASE = "langfuse.release"
AS_ROOT = "langfuse.internal.as_root"
ENVIRONMENT_KEYS = ("langfuse.environment", "deployment.environment.name", "deployment.environment")

# Whole-object metadata attributes (JSON text or object), then per-key prefixes (later wins).
OBSERVATION_METADATA = ("langfuse.observation.metadata", "langfuse.metadata")
TRACE_METADATA = ("langfuse.trace.metadata", "langfuse.metadata")
OBSERVATION_METADATA_PREFIXES = (
    "langfuse.observation.metadata.",
    "langfuse.metadata.",
    "ai.telemetry.metadata.",
)
TRACE_METADATA_PREFIXES = (
    "langfuse.trace.metadata.",
    "langfuse.metadata.",
    "ai.telemetry.metadata.",
)
# The Langfuse SDKs send values of these that are not strings as JSON text (the Python SDK from
# 5.0 encodes strings too: "x" arrives as '"x"').
JSON_METADATA_PREFIXES = ("langfuse.observation.metadata.", "langfuse.trace.metadata.")

# Trace identity: first truthy value wins (span attributes only).
USER_ID_KEYS = (
    "langfuse.user.id",
    "user.id",
    "langfuse.observation.metadata.langfuse_user_id",
    "langfuse.trace.metadata.langfuse_user_id",
    "ai.telemetry.metadata.userId",
)
SESSION_ID_KEYS = (
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.observation.metadata.langfuse_session_id",
    "langfuse.trace.metadata.langfuse_session_id",
    "ai.telemetry.metadata.sessionId",
)
TAGS_KEYS = (
    "langfuse.trace.tags",
    "langfuse.tags",
    "langfuse.observation.metadata.langfuse_tags",
    "langfuse.trace.metadata.langfuse_tags",
    "ai.telemetry.metadata.tags",
    "tag.tags",
)
PUBLIC_KEYS = ("langfuse.trace.public", "langfuse.public")

# A non-root span carrying any of these (or a ``langfuse.trace.metadata*`` key) updates its trace.
TRACE_UPDATE_KEYS = frozenset(
    {
        "langfuse.trace.name",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.trace.metadata",
        "user.id",
        "session.id",
        "langfuse.trace.public",
        "langfuse.trace.tags",
        "langfuse.user.id",
        "langfuse.session.id",
        "langfuse.observation.metadata.langfuse_user_id",
        "langfuse.observation.metadata.langfuse_session_id",
        "langfuse.observation.metadata.langfuse_tags",
        "langfuse.trace.metadata.langfuse_session_id",
        "langfuse.trace.metadata.langfuse_user_id",
        "langfuse.trace.metadata.langfuse_tags",
        "ai.telemetry.metadata.sessionId",
        "ai.telemetry.metadata.userId",
        "ai.telemetry.metadata.tags",
    }
)
TRACE_UPDATE_TRUTHY_KEYS = ("tag.tags",)
TRACE_UPDATE_PREFIX = "langfuse.trace.metadata"

IO_KEYS = (INPUT, OUTPUT, TRACE_INPUT, TRACE_OUTPUT)
