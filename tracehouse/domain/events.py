"""The internal event model: every wire format is translated into these at the edge.

An ``Event`` says "these fields of this entity were sent at this time". Nothing below the edge
knows whether it came from a JSON batch or an OTLP span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EntityKind = Literal["trace", "observation", "score"]

OBSERVATION_TYPES = (
    "SPAN",
    "GENERATION",
    "EVENT",
    "AGENT",
    "TOOL",
    "CHAIN",
    "RETRIEVER",
    "EVALUATOR",
    "EMBEDDING",
    "GUARDRAIL",
)
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
SCORE_SOURCES = ("API", "EVAL", "ANNOTATION")
SCORE_DATA_TYPES = ("NUMERIC", "CATEGORICAL", "BOOLEAN", "CORRECTION", "TEXT")

# Internal (snake_case) field names an event may carry, per entity kind.
TRACE_FIELDS = frozenset(
    {
        "timestamp",
        "name",
        "user_id",
        "session_id",
        "release",
        "version",
        "environment",
        "public",
        "bookmarked",
        "tags",
        "input",
        "output",
        "metadata",
    }
)
OBSERVATION_FIELDS = frozenset(
    {
        "trace_id",
        "type",
        "name",
        "start_time",
        "end_time",
        "completion_start_time",
        "model",
        "model_parameters",
        "input",
        "output",
        "metadata",
        "level",
        "status_message",
        "parent_observation_id",
        "version",
        "environment",
        "usage_details",
        "cost_details",
        "prompt_name",
        "prompt_version",
        "experiment_id",
        "experiment_item_id",
        "experiment_root_observation_id",
        "experiment",
    }
)
SCORE_FIELDS = frozenset(
    {
        "timestamp",
        "name",
        "value",
        "string_value",
        "data_type",
        "source",
        "trace_id",
        "observation_id",
        "session_id",
        "dataset_run_id",
        "comment",
        "metadata",
        "config_id",
        "queue_id",
        "environment",
        "author_user_id",
        "execution_trace_id",
    }
)
FIELDS_BY_KIND: dict[str, frozenset[str]] = {
    "trace": TRACE_FIELDS,
    "observation": OBSERVATION_FIELDS,
    "score": SCORE_FIELDS,
}


@dataclass(slots=True)
class Event:
    """One write to one entity.

    ``fields`` holds only what the client sent: a key that is absent was not sent and never
    clears a stored value. A key with ``None`` is an explicit null (it clears the value only for
    the fields where Langfuse lets a null clear; see ``domain.merge``).
    """

    kind: EntityKind
    entity_id: str
    event_id: str
    timestamp: datetime  # envelope time, timezone-aware UTC; orders events of one entity
    is_create: bool  # on equal timestamps a create is applied before an update
    fields: dict[str, Any] = field(default_factory=dict)
    # Implied values (a trace row implied by an observation's trace id) lose to any value
    # that a client sent explicitly for that entity, whatever the timestamps.
    weak: bool = False
