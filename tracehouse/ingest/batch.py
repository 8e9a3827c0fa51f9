"""Translate the body of ``POST /api/public/ingestion`` into internal events.

The body is ``{"batch": [<event>, ...], "metadata": <any>}``; every event is
``{"id", "type", "timestamp", "body", "metadata"?}``. Each event is validated on its own: a bad
event becomes a per-event error entry and never spoils its neighbours.

Validation is hand-written (no per-event model construction) because this is the hottest path of
the server. Every check raises :class:`~tracehouse.errors.InvalidInput` naming the field path
(``body.usage.input``) and the rule; nothing else may escape for any decoded JSON input.

Deliberate differences from Langfuse:
- trace/score (and legacy ``observation-*``) bodies without ``id`` get a deterministic id derived
  from the envelope id instead of being acknowledged and silently dropped;
- ``sdk-log`` events are reported as successes (Langfuse lists them nowhere);
- scores Langfuse's worker would drop silently are refused here with a per-event error:
  ``ANNOTATION`` without ``configId`` (except CORRECTION), CORRECTION on a session or dataset
  run; scores naming a ``configId`` are listed in ``ParsedBatch.configured_scores`` so that the
  caller checks them against the config (``api.score_configs.check_configured_scores``).
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tracehouse.domain.environment import DEFAULT_ENVIRONMENT, normalize_environment
from tracehouse.domain.events import LEVELS, SCORE_DATA_TYPES, SCORE_SOURCES, Event
from tracehouse.domain.usage import (
    MAX_COUNT,
    build_provided_usage,
    cost_details_from_object,
    usage_details_from_object,
)
from tracehouse.errors import InvalidInput

__all__ = [
    "EVENT_TYPES",
    "EventError",
    "ParsedBatch",
    "derive_entity_id",
    "normalize_environment",
    "parse_batch",
    "parse_envelope",
    "parse_event",
]

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 800
MAX_TRACE_NAME_LENGTH = 1000
MAX_TEXT_SCORE_LENGTH = 500
USAGE_UNITS = ("CHARACTERS", "TOKENS", "SECONDS", "MILLISECONDS", "IMAGES", "REQUESTS")
LEGACY_OBSERVATION_TYPES = frozenset({"GENERATION", "SPAN", "EVENT"})

_USAGE_UNITS = frozenset(USAGE_UNITS)
_LEVELS = frozenset(LEVELS)
_SCORE_SOURCES = frozenset(SCORE_SOURCES)
_SCORE_DATA_TYPES = frozenset(SCORE_DATA_TYPES)

# Marks "drop this key" from a field converter (e.g. a top-level null metadata).
_DROP: Any = object()


@dataclass(slots=True)
class EventError:
    id: str
    status: int
    message: str
    error: str | None


@dataclass(slots=True)
class ParsedBatch:
    events: list[Event] = field(default_factory=list)  # accepted events, in batch order
    successes: list[str] = field(default_factory=list)  # envelope ids answered 201
    errors: list[EventError] = field(default_factory=list)
    # Accepted scores that name a configId, with their dataType as sent (None: not sent). They
    # still have to be checked against the config (a database read) before they are stored.
    configured_scores: list[tuple[Event, Any]] = field(default_factory=list)


def derive_entity_id(kind: str, envelope_id: str) -> str:
    """Deterministic entity id for a body sent without one, stable across client retries."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tracehouse:" + kind + ":" + envelope_id))


# --------------------------------------------------------------------------------------------
# Scalar checks. Each takes the value and its field path, returns the converted value.


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _id(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(path, "expected a string")
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(path, f"must be 1 to {MAX_ID_LENGTH} characters")
    if "\r" in value:
        raise InvalidInput(path, "must not contain a carriage return")
    return value


def _opt_id(value: Any, path: str) -> str | None:
    return None if value is None else _id(value, path)


def _opt_str(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(path, "expected a string")


def _trace_name(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(path, "expected a string")
    if len(value) > MAX_TRACE_NAME_LENGTH:
        raise InvalidInput(path, f"must be at most {MAX_TRACE_NAME_LENGTH} characters")
    return value


# RFC 3339 style, a little lenient: "T", "t" or space between date and time, seconds optional, any
# number of fractional digits (beyond microseconds they are cut), offset "Z", "+hh:mm", "+hhmm",
# "+hh". Checked before ``fromisoformat``, which on its own accepts odd strings ("...12:00:00xZ").
_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


def _datetime(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(path, "expected an ISO-8601 date-time string with timezone")
    m = _ISO_DATETIME.fullmatch(value)
    if m is None:
        raise InvalidInput(path, "expected an ISO-8601 date-time with timezone")
    if m.group(1) is None:
        raise InvalidInput(path, "date-time must include a timezone (Z or +hh:mm)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(path, "expected a valid ISO-8601 date-time") from None
    if parsed.tzinfo is not UTC:
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:
            raise InvalidInput(path, "date-time out of range") from None
    return parsed


def _opt_datetime(value: Any, path: str) -> datetime | None:
    return None if value is None else _datetime(value, path)


def _opt_bool(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(path, "expected a boolean")


def _opt_int(value: Any, path: str) -> int | None:
    """An integer (integral floats accepted: JSON does not tell 3 from 3.0); bool is not one."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(path, "expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidInput(path, "expected an integer")
        value = int(value)
    elif not isinstance(value, int):
        raise InvalidInput(path, "expected an integer")
    if value > MAX_COUNT or value < -MAX_COUNT:
        raise InvalidInput(path, "integer out of range")
    return value


def _opt_number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(path, "expected a number")
    try:
        f = float(value)
    except OverflowError:
        raise InvalidInput(path, "number out of range") from None
    if not math.isfinite(f):
        raise InvalidInput(path, "expected a finite number")
    return f


def _level(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in _LEVELS:
        raise InvalidInput(path, "expected one of " + ", ".join(LEVELS))
    return value


def _tags(value: Any, path: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput(path, "expected a list of strings")
    for item in value:
        if not isinstance(item, str):
            raise InvalidInput(path, "expected a list of strings")
    return value


def _metadata(value: Any, path: str) -> Any:
    # Any JSON; a top-level null is treated as "not sent".
    return _DROP if value is None else value


def _anything(value: Any, path: str) -> Any:
    return value


def _environment(value: Any, path: str) -> str:
    return normalize_environment(value)


def _model_parameters(value: Any, path: str) -> dict[str, Any] | None:
    """Map of string -> string | number | boolean | null | list of strings | map str -> str."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(path, "expected an object")
    for key, item in value.items():
        if item is None or isinstance(item, (str, int, float)):  # bool is an int
            continue
        if isinstance(item, list):
            if all(isinstance(x, str) for x in item):
                continue
            raise InvalidInput(f"{path}.{key}", "expected a list of strings")
        if isinstance(item, dict):
            if all(isinstance(x, str) for x in item.values()):
                continue
            raise InvalidInput(f"{path}.{key}", "expected a map of strings")
        raise InvalidInput(
            f"{path}.{key}",
            "expected a string, number, boolean, list of strings or map of strings",
        )
    return value


def _count(value: Any, path: str) -> int | None:
    """A usage count: integer; negative counts are accepted but not kept."""
    n = _opt_int(value, path)
    return None if n is None or n < 0 else n


# --------------------------------------------------------------------------------------------
# Field tables: wire key -> (internal name, field path, converter).

Converter = Callable[[Any, str], Any]
FieldTable = dict[str, tuple[str, str, Converter]]


def _table(*rows: tuple[str, str, Converter]) -> FieldTable:
    return {wire: (internal, "body." + wire, conv) for wire, internal, conv in rows}


_TRACE_TABLE = _table(
    ("name", "name", _trace_name),
    ("userId", "user_id", _opt_str),
    ("sessionId", "session_id", _opt_str),
    ("release", "release", _opt_str),
    ("version", "version", _opt_str),
    ("environment", "environment", _environment),
    ("public", "public", _opt_bool),
    ("tags", "tags", _tags),
    ("input", "input", _anything),
    ("output", "output", _anything),
    ("metadata", "metadata", _metadata),
    ("timestamp", "timestamp", _opt_datetime),
)

_EVENT_ROWS: tuple[tuple[str, str, Converter], ...] = (
    ("traceId", "trace_id", _opt_id),
    ("name", "name", _opt_str),
    ("startTime", "start_time", _opt_datetime),
    ("metadata", "metadata", _metadata),
    ("input", "input", _anything),
    ("output", "output", _anything),
    ("level", "level", _level),
    ("statusMessage", "status_message", _opt_str),
    ("parentObservationId", "parent_observation_id", _opt_str),
    ("version", "version", _opt_str),
)
_SPAN_ROWS = (("endTime", "end_time", _opt_datetime),)
_GENERATION_ROWS: tuple[tuple[str, str, Converter], ...] = (
    ("completionStartTime", "completion_start_time", _opt_datetime),
    ("model", "model", _opt_str),
    ("modelParameters", "model_parameters", _model_parameters),
)
_PROMPT_ROWS: tuple[tuple[str, str, Converter], ...] = (
    ("promptName", "prompt_name", _opt_str),
    ("promptVersion", "prompt_version", _opt_int),
)
_ENV_ROWS = (("environment", "environment", _environment),)

_EVENT_TABLE = _table(*_EVENT_ROWS, *_ENV_ROWS)
_SPAN_TABLE = _table(*_EVENT_ROWS, *_SPAN_ROWS, *_ENV_ROWS)
_GENERATION_TABLE = _table(*_EVENT_ROWS, *_SPAN_ROWS, *_GENERATION_ROWS, *_PROMPT_ROWS, *_ENV_ROWS)
# Legacy observation body: no environment (always "default"), no prompt link.
_LEGACY_TABLE = _table(*_EVENT_ROWS, *_SPAN_ROWS, *_GENERATION_ROWS)

_SCORE_TABLE = _table(
    ("traceId", "trace_id", _opt_id),
    ("observationId", "observation_id", _opt_id),
    ("sessionId", "session_id", _opt_id),
    ("datasetRunId", "dataset_run_id", _opt_id),
    ("environment", "environment", _environment),
    ("comment", "comment", _opt_str),
    ("metadata", "metadata", _metadata),
    ("configId", "config_id", _opt_str),
    ("queueId", "queue_id", _opt_str),
    ("executionTraceId", "execution_trace_id", _opt_str),
)


def _apply_table(body: dict[str, Any], table: FieldTable, fields: dict[str, Any]) -> None:
    for key, value in body.items():
        row = table.get(key)
        if row is None:
            continue  # unknown (or specially handled) key: dropped
        internal, path, convert = row
        converted = convert(value, path)
        if converted is not _DROP:
            fields[internal] = converted


# --------------------------------------------------------------------------------------------
# Usage and cost (generation-body types and legacy observations).


def _usage_fields(body: dict[str, Any], fields: dict[str, Any]) -> None:
    input_count = output_count = total_count = None
    cost: dict[str, float] = {}

    usage = body.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise InvalidInput("body.usage", "expected an object")
        if "promptTokens" in usage or "completionTokens" in usage or "totalTokens" in usage:
            # OpenAI-style legacy object: the other keys are ignored.
            input_count = _count(usage.get("promptTokens"), "body.usage.promptTokens")
            output_count = _count(usage.get("completionTokens"), "body.usage.completionTokens")
            total_count = _count(usage.get("totalTokens"), "body.usage.totalTokens")
        elif usage:
            input_count = _count(usage.get("input"), "body.usage.input")
            output_count = _count(usage.get("output"), "body.usage.output")
            total_count = _count(usage.get("total"), "body.usage.total")
            unit = usage.get("unit")
            if unit is not None and (not isinstance(unit, str) or unit not in _USAGE_UNITS):
                raise InvalidInput("body.usage.unit", "expected one of " + ", ".join(USAGE_UNITS))
            for wire, key in (
                ("inputCost", "input"),
                ("outputCost", "output"),
                ("totalCost", "total"),
            ):
                amount = _opt_number(usage.get(wire), "body.usage." + wire)
                if amount is not None:
                    cost[key] = amount

    if (
        input_count is None
        and output_count is None
        and total_count is None
        and ("promptTokens" in body or "completionTokens" in body or "totalTokens" in body)
    ):
        # SDK v1 sent the OpenAI-style counts at the top level of the generation body.
        input_count = _count(body.get("promptTokens"), "body.promptTokens")
        output_count = _count(body.get("completionTokens"), "body.completionTokens")
        total_count = _count(body.get("totalTokens"), "body.totalTokens")

    details: dict[str, int] = {}
    usage_details = body.get("usageDetails")
    if usage_details is not None:
        if not isinstance(usage_details, dict):
            raise InvalidInput("body.usageDetails", "expected an object")
        details = usage_details_from_object(usage_details)

    cost_details = body.get("costDetails")
    if cost_details is not None:
        if not isinstance(cost_details, dict):
            raise InvalidInput("body.costDetails", "expected an object")
        cost.update(cost_details_from_object(cost_details))

    provided = build_provided_usage(input_count, output_count, total_count, details)
    if provided:
        fields["usage_details"] = provided
    if cost:
        fields["cost_details"] = cost


# --------------------------------------------------------------------------------------------
# Per entity kind.


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: str  # "trace" | "observation" | "score" | "sdk-log"
    is_create: bool
    observation_type: str | None = None  # None: taken from body.type (legacy observation-*)
    table: FieldTable | None = None
    has_usage: bool = False


def _entity_id(body: dict[str, Any], kind: str, envelope_id: str, optional: bool) -> str:
    value = body.get("id")
    if value is None:
        if optional:
            return derive_entity_id(kind, envelope_id)
        raise InvalidInput("body.id", "required")
    return _id(value, "body.id")


def _parse_trace(envelope_id: str, ts: datetime, body: dict[str, Any], spec: _Spec) -> Event:
    entity_id = _entity_id(body, "trace", envelope_id, optional=True)
    fields: dict[str, Any] = {}
    _apply_table(body, _TRACE_TABLE, fields)
    if fields.get("timestamp") is None:
        fields["timestamp"] = ts
    if "environment" not in fields:
        fields["environment"] = DEFAULT_ENVIRONMENT
    return Event("trace", entity_id, envelope_id, ts, True, fields)


def _parse_observation(envelope_id: str, ts: datetime, body: dict[str, Any], spec: _Spec) -> Event:
    legacy = spec.observation_type is None
    entity_id = _entity_id(body, "observation", envelope_id, optional=legacy)
    if legacy:
        obs_type = body.get("type")
        if not isinstance(obs_type, str) or obs_type not in LEGACY_OBSERVATION_TYPES:
            raise InvalidInput("body.type", "expected one of GENERATION, SPAN, EVENT")
    else:
        obs_type = spec.observation_type
    fields: dict[str, Any] = {"type": obs_type}
    assert spec.table is not None
    _apply_table(body, spec.table, fields)

    if spec.is_create and fields.get("start_time") is None:
        fields["start_time"] = ts
    if legacy or (spec.is_create and "environment" not in fields):
        fields["environment"] = DEFAULT_ENVIRONMENT

    if not legacy and spec.has_usage:
        prompt_name = fields.get("prompt_name")
        prompt_version = fields.get("prompt_version")
        if (prompt_name is None) != (prompt_version is None):
            missing = "body.promptVersion" if prompt_version is None else "body.promptName"
            raise InvalidInput(missing, "promptName and promptVersion must be set together")
    if spec.has_usage:
        _usage_fields(body, fields)
    return Event("observation", entity_id, envelope_id, ts, spec.is_create, fields)


def _score_value(body: dict[str, Any], fields: dict[str, Any]) -> None:
    value: Any = body.get("value")
    if value is None:
        raise InvalidInput("body.value", "required")
    if isinstance(value, str):
        is_number = False
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        is_number = True
        value = _opt_number(value, "body.value")
    else:
        raise InvalidInput("body.value", "expected a number or a string")

    data_type = body.get("dataType")
    if data_type is None:
        data_type = "NUMERIC" if is_number else "CATEGORICAL"
    elif not isinstance(data_type, str) or data_type not in _SCORE_DATA_TYPES:
        raise InvalidInput("body.dataType", "expected one of " + ", ".join(SCORE_DATA_TYPES))

    if data_type == "NUMERIC":
        if not is_number:
            raise InvalidInput("body.value", "NUMERIC scores need a numeric value")
        fields["value"] = value
        fields["string_value"] = None
    elif data_type == "BOOLEAN":
        if not is_number or value not in (0.0, 1.0):
            raise InvalidInput("body.value", "BOOLEAN scores need the value 0 or 1")
        fields["value"] = value
        fields["string_value"] = "True" if value == 1.0 else "False"
    else:  # CATEGORICAL, TEXT, CORRECTION
        if is_number:
            raise InvalidInput("body.value", f"{data_type} scores need a string value")
        if data_type == "TEXT" and not 1 <= len(value) <= MAX_TEXT_SCORE_LENGTH:
            raise InvalidInput(
                "body.value", f"TEXT scores need 1 to {MAX_TEXT_SCORE_LENGTH} characters"
            )
        if data_type == "CORRECTION":
            if body.get("configId") is not None:
                raise InvalidInput("body.configId", "CORRECTION scores cannot reference a config")
            for key in ("sessionId", "datasetRunId"):
                if body.get(key) is not None:
                    raise InvalidInput(
                        f"body.{key}", "CORRECTION scores can only target a trace or observation"
                    )
        fields["value"] = None
        fields["string_value"] = value
    fields["data_type"] = data_type


def _parse_score(envelope_id: str, ts: datetime, body: dict[str, Any], spec: _Spec) -> Event:
    entity_id = _entity_id(body, "score", envelope_id, optional=True)
    name = body.get("name")
    if name is None:
        raise InvalidInput("body.name", "required")
    if not isinstance(name, str) or not name:
        raise InvalidInput("body.name", "expected a non-empty string")
    fields: dict[str, Any] = {"timestamp": ts, "name": name}
    _apply_table(body, _SCORE_TABLE, fields)

    targets = (
        fields.get("trace_id") is not None,
        fields.get("session_id") is not None,
        fields.get("dataset_run_id") is not None,
    )
    if sum(targets) == 0:
        raise InvalidInput("body.traceId", "required unless sessionId or datasetRunId is set")
    if sum(targets) > 1:
        names = [
            n for n, t in zip(("traceId", "sessionId", "datasetRunId"), targets, strict=True) if t
        ]
        raise InvalidInput(f"body.{names[1]}", f"cannot be combined with {names[0]}")
    if fields.get("observation_id") is not None and not targets[0]:
        raise InvalidInput("body.observationId", "requires traceId")

    _score_value(body, fields)

    source = body.get("source")
    if source is None:
        source = "API"
    elif not isinstance(source, str) or source not in _SCORE_SOURCES:
        raise InvalidInput("body.source", "expected one of " + ", ".join(SCORE_SOURCES))
    fields["source"] = source
    if (
        source == "ANNOTATION"
        and not fields.get("config_id")
        and fields["data_type"] != "CORRECTION"
    ):
        raise InvalidInput("body.configId", "required for ANNOTATION scores (except CORRECTION)")
    if "environment" not in fields:
        fields["environment"] = DEFAULT_ENVIRONMENT
    return Event("score", entity_id, envelope_id, ts, True, fields)


def _parse_sdk_log(envelope_id: str, ts: datetime, body: dict[str, Any], spec: _Spec) -> None:
    if "log" not in body:
        raise InvalidInput("body.log", "required")
    return None


_PARSERS: dict[str, Callable[[str, datetime, dict[str, Any], _Spec], Event | None]] = {
    "trace": _parse_trace,
    "observation": _parse_observation,
    "score": _parse_score,
    "sdk-log": _parse_sdk_log,
}


def _observation_spec(obs_type: str, is_create: bool, table: FieldTable) -> _Spec:
    return _Spec("observation", is_create, obs_type, table, table is _GENERATION_TABLE)


_SPECS: dict[str, _Spec] = {
    "trace-create": _Spec("trace", True),
    "score-create": _Spec("score", True),
    "sdk-log": _Spec("sdk-log", True),
    "span-create": _observation_spec("SPAN", True, _SPAN_TABLE),
    "span-update": _observation_spec("SPAN", False, _SPAN_TABLE),
    "generation-create": _observation_spec("GENERATION", True, _GENERATION_TABLE),
    "generation-update": _observation_spec("GENERATION", False, _GENERATION_TABLE),
    "event-create": _observation_spec("EVENT", True, _EVENT_TABLE),
    "observation-create": _Spec("observation", True, None, _LEGACY_TABLE, True),
    "observation-update": _Spec("observation", False, None, _LEGACY_TABLE, True),
}
for _name in ("agent", "tool", "chain", "retriever", "evaluator", "embedding", "guardrail"):
    _SPECS[_name + "-create"] = _observation_spec(_name.upper(), True, _GENERATION_TABLE)

EVENT_TYPES = frozenset(_SPECS)
_INTERNAL_ONLY_TYPES = frozenset({"dataset-run-item-create"})


# --------------------------------------------------------------------------------------------
# Public entry points.


def parse_envelope(payload: Any) -> list[Any]:
    """The ``batch`` array of a decoded request body (elements not checked here)."""
    if not isinstance(payload, dict):
        raise InvalidInput("batch", "expected a JSON object with a 'batch' array")
    batch = payload.get("batch")
    if batch is None:
        raise InvalidInput("batch", "required")
    if not isinstance(batch, list):
        raise InvalidInput("batch", "expected an array")
    return batch


def parse_event(raw: Any) -> Event | None:
    """One batch element -> one internal event (``None`` for ``sdk-log``)."""
    if not isinstance(raw, dict):
        raise InvalidInput("event", "expected an object")
    envelope_id = raw.get("id")
    if envelope_id is None:
        raise InvalidInput("id", "required")
    _id(envelope_id, "id")

    event_type = raw.get("type")
    if event_type is None:
        raise InvalidInput("type", "required")
    if not isinstance(event_type, str):
        raise InvalidInput("type", "expected a string")
    spec = _SPECS.get(event_type)
    if spec is None:
        if event_type in _INTERNAL_ONLY_TYPES:
            raise InvalidInput("type", f"{event_type} is only allowed for internal usage")
        raise InvalidInput("type", f"unknown event type {_short(event_type)}")

    timestamp = raw.get("timestamp")
    if timestamp is None:
        raise InvalidInput("timestamp", "required")
    ts = _datetime(timestamp, "timestamp")

    body = raw.get("body")
    if body is None:
        raise InvalidInput("body", "required")
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected an object")
    return _PARSERS[spec.kind](envelope_id, ts, body, spec)


def parse_batch(payload: Any) -> ParsedBatch:
    """Validate every event of a request body on its own.

    Raises :class:`InvalidInput` only when the envelope itself is invalid (answer 400); otherwise
    returns accepted events plus per-event successes and errors (answer 207).
    """
    batch = parse_envelope(payload)
    result = ParsedBatch()
    events = result.events
    successes = result.successes
    errors = result.errors
    for raw in batch:
        try:
            event = parse_event(raw)
        except InvalidInput as exc:
            errors.append(EventError(_error_id(raw), 400, "Invalid request data", exc.message))
            continue
        except Exception:  # a bug; answer like Langfuse does and keep the other events
            log.exception("unexpected error while parsing an ingestion event")
            errors.append(EventError(_error_id(raw), 500, "Internal Server Error", None))
            continue
        if event is not None:
            events.append(event)
            if event.kind == "score" and event.fields.get("config_id"):
                result.configured_scores.append((event, raw["body"].get("dataType")))
        successes.append(raw["id"])
    return result


def _error_id(raw: Any) -> str:
    if isinstance(raw, dict):
        value = raw.get("id")
        if isinstance(value, str):
            return value
    return "unknown"
