"""Map one decoded OTel span onto observation and trace fields, producer by producer.

Each producer module (``langfuse``, ``genai``, ``openinference``, ``vercel_ai``, ``openllmetry``,
``logfire``, ``others``) only declares attribute keys; this module composes them into the
precedence chains of Langfuse's OTel ingestion (see ``shared/reference/otel-mapping.md`` beside the repository).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from tracehouse.domain.environment import normalize_environment
from tracehouse.memo import BoundedMemo

from . import genai, langfuse, logfire, openinference, others, vercel_ai
from ._io import CONSUMED_KEYS, CONSUMED_PREFIXES, observation_io
from ._model import (
    cost_details,
    experiment_fields,
    model_name,
    model_parameters,
    prompt_link,
    usage_details,
)
from ._span import (
    MappedSpan,
    SpanView,
    first_truthy,
    has_value,
    json_object,
    json_value,
    parse_time,
    stripped_names,
    to_text,
    truthy,
)

__all__ = ["MappedSpan", "SpanView", "map_span"]

STATUS_CODE_ERROR = 2


# --------------------------------------------------------------------------------------------
# Observation type (TYPEMAP order).


def _operation(attrs: dict[str, Any]) -> str | None:
    for key in vercel_ai.OPERATION_KEYS:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def observation_type(span: SpanView) -> str:
    attrs = span.attributes
    lf_type = attrs.get(langfuse.TYPE)
    if (
        lf_type == "span"
        and span.scope_name == langfuse.SCOPE_PREFIX
        and span.resource.get("telemetry.sdk.language") == "python"
        and _version_at_most(span.scope_version, (3, 3))
        and any(key in attrs for key in langfuse.PY_GENERATION_HINTS)
    ):
        return "GENERATION"
    if isinstance(lf_type, str) and lf_type in langfuse.TYPES:
        return langfuse.TYPES[lf_type]
    kind = attrs.get(openinference.SPAN_KIND)
    if isinstance(kind, str) and kind in openinference.SPAN_KIND_TYPES:
        return openinference.SPAN_KIND_TYPES[kind]
    op = attrs.get(genai.OPERATION)
    if isinstance(op, str) and op in genai.OPERATION_TYPES:
        return genai.OPERATION_TYPES[op]
    subtype = attrs.get(others.GENKIT_SUBTYPE)
    if isinstance(subtype, str) and subtype in others.GENKIT_TYPES:
        return others.GENKIT_TYPES[subtype]
    ai_op = _operation(attrs)
    if ai_op is not None:
        has_model = any(
            has_value(attrs.get(k))
            for k in (langfuse.MODEL, vercel_ai.MODEL_ID, genai.REQUEST_MODEL, genai.RESPONSE_MODEL)
        )
        if has_model:
            for prefix, mapped in vercel_ai.MODEL_CALLS.items():
                if ai_op.startswith(prefix) or attrs.get(vercel_ai.OPERATION_ID) == prefix:
                    return mapped
        for key in (vercel_ai.OPERATION_ID, *vercel_ai.OPERATION_KEYS):
            value = attrs.get(key)
            if isinstance(value, str) and value in vercel_ai.OTHER_OPERATIONS:
                return vercel_ai.OTHER_OPERATIONS[value]
    if any(has_value(attrs.get(k)) for k in genai.TOOL_KEYS):
        return "TOOL"
    if any(has_value(attrs.get(k)) for k in others.FLUE_TOOL_KEYS):
        return "TOOL"
    if any(has_value(attrs.get(k)) for k in others.FLUE_AGENT_KEYS):
        return "AGENT"
    if span.scope_name == others.LIVEKIT_SCOPE and span.name in others.LIVEKIT_TYPES:
        return others.LIVEKIT_TYPES[span.name]
    if any(has_value(attrs.get(k)) for k in _MODEL_FALLBACK_KEYS):
        return "GENERATION"
    return "SPAN"


_MODEL_FALLBACK_KEYS = (
    langfuse.MODEL,
    genai.REQUEST_MODEL,
    genai.RESPONSE_MODEL,
    openinference.MODEL_NAME,
    others.PLAIN_MODEL,
)


def _version_at_most(version: str, limit: tuple[int, int]) -> bool:
    if not version:
        return True
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) <= limit


# --------------------------------------------------------------------------------------------
# Name, level, times.


def observation_name(span: SpanView) -> str:
    attrs = span.attributes
    tool = attrs.get(genai.TOOL_NAME)
    if truthy(tool):
        return to_text(tool)
    if others.GENKIT_NAME in attrs:
        return to_text(attrs[others.GENKIT_NAME])
    if truthy(attrs.get(logfire.MESSAGE)):
        return to_text(attrs[logfire.MESSAGE])
    if vercel_ai.TOOL_CALL_NAME in attrs:
        return to_text(attrs[vercel_ai.TOOL_CALL_NAME])
    if vercel_ai.OPERATION_ID in attrs:
        name = to_text(attrs[vercel_ai.OPERATION_ID])
        function_id = attrs.get(vercel_ai.FUNCTION_ID)
        return f"{to_text(function_id)}:{name}" if truthy(function_id) else name
    return span.name


def observation_level(span: SpanView) -> str:
    value = span.attributes.get(langfuse.LEVEL)
    if isinstance(value, str):
        mapped = langfuse.LEVEL_ALIASES.get(value.strip().upper())
        if mapped is not None:
            return mapped
    if span.status_code == STATUS_CODE_ERROR:
        return "ERROR"
    if span.scope_name == others.LIVEKIT_SCOPE and span.name in others.LIVEKIT_DEBUG_SPANS:
        return "DEBUG"
    return "DEFAULT"


def completion_start_time(span: SpanView) -> datetime | None:
    value = span.attributes.get(langfuse.COMPLETION_START_TIME)
    if value is not None:
        parsed = parse_time(value)
        if parsed is None and isinstance(value, str):
            try:
                parsed = parse_time(json.loads(value))  # older SDKs double-quoted the string
            except ValueError:
                parsed = None
        if parsed is not None:
            return parsed
    for key in vercel_ai.MS_TO_FIRST_CHUNK:
        ms = span.attributes.get(key)
        if isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms):
            return span.start_time + timedelta(milliseconds=math.ceil(ms))
    return None


# --------------------------------------------------------------------------------------------
# Metadata, environment, trace identity.


class _KeySet:
    """What the attribute names of one span mean, worked out once per distinct sequence of
    names: spans of one instrumentation repeat the same names in the same order, so most spans
    find theirs in ``_KEY_SETS`` instead of testing every name against every prefix again."""

    __slots__ = (
        "names",
        "prefixed",
        "stripped_by",
        "memo",
        "unmapped",
        "json_metadata",
        "updates_trace",
    )

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        # per prefix tuple: (attribute name, metadata key) of the names it covers, in order
        self.prefixed: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
        self.stripped_by: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
        self.memo: dict[str, Any] = {}
        self.unmapped = tuple(
            n for n in names if n not in CONSUMED_KEYS and not n.startswith(CONSUMED_PREFIXES)
        )
        self.json_metadata = tuple(
            n for n in names if n.startswith(langfuse.JSON_METADATA_PREFIXES)
        )
        self.updates_trace = not langfuse.TRACE_UPDATE_KEYS.isdisjoint(names) or any(
            n.startswith(langfuse.TRACE_UPDATE_PREFIX) for n in names
        )

    def stripped(self, prefixes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        found = self.stripped_by.get(prefixes)
        if found is None:
            found = self.stripped_by[prefixes] = stripped_names(self.names, prefixes)
        return found

    def remembered(self, what: str, compute: Callable[[tuple[str, ...]], Any]) -> Any:
        if what in self.memo:
            return self.memo[what]
        found = self.memo[what] = compute(self.names)
        return found

    def with_prefixes(self, prefixes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """``stripped`` with each name once, by the first of ``prefixes`` it starts with, and
        without the names Vercel's metadata leaves out: (attribute name, metadata key)."""
        found = self.prefixed.get(prefixes)
        if found is None:
            pairs: dict[str, str] = {}
            for name, key in self.stripped(prefixes):
                if name not in vercel_ai.METADATA_EXCLUDED:
                    pairs.setdefault(name, key)
            found = self.prefixed[prefixes] = tuple(pairs.items())
        return found


_KEY_SETS_MAX = 2048  # instrumentations are few; emptied when full (e.g. names with ids in them)
_KEY_SETS: BoundedMemo[tuple[str, ...], _KeySet] = BoundedMemo(_KeySet, _KEY_SETS_MAX)


def key_set(attrs: dict[str, Any]) -> _KeySet:
    return _KEY_SETS[tuple(attrs)]


def metadata_attributes(
    attrs: dict[str, Any],
    whole_keys: tuple[str, ...],
    prefixes: tuple[str, ...],
    keys: _KeySet | None = None,
) -> dict[str, Any]:
    """The metadata a producer attached: a whole-object attribute, then ``<prefix><k>`` keys
    (``keys``: the key set of ``attrs``, if already known)."""
    result: dict[str, Any] = {}
    for key in whole_keys:
        if truthy(attrs.get(key)):
            result.update(json_object(attrs[key]) or {})
            break
    for name, key in (keys or key_set(attrs)).with_prefixes(prefixes):
        result[key] = attrs[name]
    return result


def _resource_metadata(resource: dict[str, Any]) -> dict[str, Any]:
    """The trace metadata a resource carries. The spans of one export share their resource's
    dict, so the last result is kept for the next span (read-only: callers spread it)."""
    global _LAST_RESOURCE
    last = _LAST_RESOURCE  # one read: other threads may replace it meanwhile
    if last[0] is resource:
        return last[1]
    found = metadata_attributes(resource, langfuse.TRACE_METADATA, langfuse.TRACE_METADATA_PREFIXES)
    _LAST_RESOURCE = (resource, found)
    return found


_LAST_RESOURCE: tuple[Any, dict[str, Any]] = (None, {})


def unmapped_attributes(attrs: dict[str, Any], keys: _KeySet | None = None) -> dict[str, str]:
    """Span attributes not consumed as I/O or metadata, each as a string."""
    return {name: to_text(attrs[name]) for name in (keys or key_set(attrs)).unmapped}


def environment(span: SpanView) -> str:
    for key in langfuse.ENVIRONMENT_KEYS:
        for source in (span.attributes, span.resource):
            value = source.get(key)
            if truthy(value):
                if isinstance(value, str):
                    return _normalized_environment(value)
                return normalize_environment(value)
    return normalize_environment(None)


# Spans of one service repeat the same few environment names.
_normalized_environment = lru_cache(maxsize=256)(normalize_environment)


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [to_text(v) for v in value]
    if isinstance(value, str):
        if value.startswith("["):
            try:
                parsed = json.loads(value)
                if isinstance(parsed, list):
                    return [to_text(v) for v in parsed]
            except ValueError:
                pass
        if "," in value:
            return [part.strip() for part in value.split(",")]
        return [value]
    return [to_text(value)]


def _carries_trace_updates(attrs: dict[str, Any], keys: _KeySet) -> bool:
    if keys.updates_trace:
        return True
    return any(truthy(attrs.get(k)) for k in langfuse.TRACE_UPDATE_TRUTHY_KEYS)


def _scope_metadata(span: SpanView) -> dict[str, Any]:
    return {
        "name": span.scope_name,
        "version": span.scope_version,
        "attributes": span.scope_attributes,
    }


def _with_json_metadata_decoded(span: SpanView, keys: _KeySet) -> SpanView:
    """The span with its JSON-encoded metadata values decoded, when its producer encodes them.

    The exporter's headers say so (``json_metadata``, also covering third-party spans that got
    propagated metadata), or the span is the Python or JS SDK's own: the JS SDK and the Python
    SDK 3.x/4.x send a value that is not a string (Python: nor an int) as JSON text and strings
    as they are, the Python SDK >= 5 encodes strings too. Langfuse's read API parses each value
    back. A value that is not JSON (e.g. baggage from an older upstream service) is kept as it
    came.
    """
    language = span.resource.get("telemetry.sdk.language")
    own_span = span.scope_name == langfuse.SCOPE_PREFIX and language in ("nodejs", "python")
    if not (span.json_metadata or own_span):
        return span
    encoded = keys.json_metadata
    if not encoded:
        return span
    attrs = dict(span.attributes)
    for key in encoded:
        attrs[key] = json_value(attrs[key])
    # The constructor, positionally: dataclasses.replace costs several times as much.
    return SpanView(
        span.name,
        span.start_time,
        attrs,
        span.resource,
        span.scope_name,
        span.scope_version,
        span.scope_attributes,
        span.events,
        span.status_code,
        span.status_message,
        span.has_parent,
        span.json_metadata,
    )


# --------------------------------------------------------------------------------------------
# The span as a whole.


def map_span(span: SpanView) -> MappedSpan:
    """Observation fields of a span, and the trace fields it carries (if any)."""
    keys = key_set(span.attributes)  # decoding values below keeps the names
    span = _with_json_metadata_decoded(span, keys)
    attrs = span.attributes
    obs_type = observation_type(span)
    name = observation_name(span)
    inp, out = observation_io(span, keys)
    env = environment(span)
    version = attrs.get(langfuse.VERSION) or span.resource.get("service.version")
    resource_metadata = _resource_metadata(span.resource)
    observation_metadata = metadata_attributes(
        attrs, langfuse.OBSERVATION_METADATA, langfuse.OBSERVATION_METADATA_PREFIXES, keys
    )
    is_langfuse_sdk = span.scope_name.startswith(langfuse.SCOPE_PREFIX)
    system: dict[str, Any] = {}
    if not is_langfuse_sdk:
        system["attributes"] = unmapped_attributes(attrs, keys)
    system["resourceAttributes"] = span.resource
    system["scope"] = _scope_metadata(span)

    obs: dict[str, Any] = {
        "type": obs_type,
        "name": name,
        "level": observation_level(span),
        "environment": env,
        "metadata": {**resource_metadata, **observation_metadata, **system},
    }
    status_message = attrs.get(langfuse.STATUS_MESSAGE) or span.status_message or None
    if status_message is not None:
        obs["status_message"] = to_text(status_message)
    if version is not None:
        obs["version"] = to_text(version)
    if inp is not None:
        obs["input"] = inp
    if out is not None:
        obs["output"] = out
    if obs_type not in ("SPAN", "EVENT"):
        optional = {
            "completion_start_time": completion_start_time(span),
            "model": model_name(span),
            "model_parameters": model_parameters(span, keys),
            "usage_details": usage_details(span, keys),
            "cost_details": cost_details(span),
        }
        obs.update((k, v) for k, v in optional.items() if v is not None)
        if obs_type == "GENERATION":
            prompt = prompt_link(attrs)
            if prompt is not None:
                obs["prompt_name"], obs["prompt_version"] = prompt

    if langfuse.EXPERIMENT_ID in attrs:
        obs.update(experiment_fields(attrs))

    is_root = not span.has_parent or to_text(attrs.get(langfuse.AS_ROOT)).lower() == "true"
    if not is_root and not _carries_trace_updates(attrs, keys):
        return MappedSpan(obs, None)
    trace = _trace_fields(
        span, is_root, obs, (resource_metadata, observation_metadata, system), keys
    )
    return MappedSpan(obs, trace)


def _trace_fields(
    span: SpanView,
    is_root: bool,
    obs: dict[str, Any],
    metadata_parts: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    keys: _KeySet,
) -> dict[str, Any]:
    attrs = span.attributes
    trace: dict[str, Any] = {"environment": obs["environment"]}
    if is_root:
        trace["timestamp"] = span.start_time
    name = attrs.get(langfuse.TRACE_NAME)
    if truthy(name):
        trace["name"] = to_text(name)
    elif is_root:
        trace["name"] = obs["name"]
    for field_name, key in (("input", langfuse.TRACE_INPUT), ("output", langfuse.TRACE_OUTPUT)):
        if truthy(attrs.get(key)):
            trace[field_name] = json_value(attrs[key])
        elif is_root and field_name in obs:
            trace[field_name] = obs[field_name]
    trace_metadata = metadata_attributes(
        attrs, langfuse.TRACE_METADATA, langfuse.TRACE_METADATA_PREFIXES, keys
    )
    resource_metadata, observation_metadata, system = metadata_parts
    if is_root:
        trace["metadata"] = {
            **resource_metadata,
            **trace_metadata,
            **observation_metadata,
            **system,
        }
    else:
        system = {k: v for k, v in system.items() if k != "attributes"}
        trace["metadata"] = {**resource_metadata, **trace_metadata, **system}
    if "version" in obs:
        trace["version"] = obs["version"]
    release = attrs.get(langfuse.RELEASE) or span.resource.get(langfuse.RELEASE)
    if release is not None:
        trace["release"] = to_text(release)
    user_id = first_truthy(attrs, langfuse.USER_ID_KEYS)
    if user_id is not None:
        trace["user_id"] = to_text(user_id)
    session_id = first_truthy(attrs, langfuse.SESSION_ID_KEYS)
    if session_id is not None:
        trace["session_id"] = to_text(session_id)
    tags = first_truthy(attrs, langfuse.TAGS_KEYS)
    if tags is not None:
        trace["tags"] = _tags(tags)
    for key in langfuse.PUBLIC_KEYS:
        if key in attrs:
            trace["public"] = attrs[key] is True or attrs[key] == "true"
            break
    return trace
