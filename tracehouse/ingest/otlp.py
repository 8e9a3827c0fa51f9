"""Decode an OTLP/HTTP trace export (protobuf or JSON) into internal events; pure, no I/O.

Every span becomes one observation event, plus a trace event when it is a root span or carries
trace-level attributes. The attribute conventions of each producer live in
:mod:`tracehouse.ingest.conventions`. One span that cannot be mapped is reported in
``rejected`` and never spoils its neighbours; only an undecodable body raises.

Attribute values: string, bool, int (int64), double, arrays and kvlists become the matching
Python values (kvlist -> dict); bytes become a base64 string; a double NaN/Infinity becomes the
string ``"NaN"``/``"Infinity"``/``"-Infinity"`` (JSON cannot hold them).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracehouse.domain.events import Event
from tracehouse.errors import InvalidInput

from .conventions import SpanView, map_span

try:  # compiled installs only (setup.py)
    from tracehouse.domain._times import utc_from_unix_ns

    from ._otlp_wire import walk_export
except ImportError:  # pure Python installs
    utc_from_unix_ns = None  # type: ignore[assignment]
    walk_export = None  # type: ignore[assignment]

__all__ = [
    "DecodedExport",
    "SpanError",
    "any_value",
    "decode_json",
    "decode_protobuf",
    "decode_request",
]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Latest representable start: 9999-12-31T23:59:59.999Z, in nanoseconds since the epoch.
_MAX_UNIX_NANO = 253402300799999 * 1_000_000
_MAX_UINT64 = 2**64 - 1  # protobuf's fixed64; OTLP/JSON times are parsed into it too
_HEX = re.compile(r"[0-9a-fA-F]*")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(slots=True)
class SpanError:
    trace_id: str | None
    span_id: str | None
    message: str


@dataclass(slots=True)
class DecodedExport:
    events: list[Event] = field(default_factory=list)  # trace + observation events
    rejected: list[SpanError] = field(default_factory=list)  # spans that could not be mapped
    span_count: int = 0


# What mapping reads of one span: trace id, span id, parent span id (bytes, empty when unset),
# name, start and end (ns since the epoch), attributes, events as (name, attributes), status code
# and status message.
SpanFields = tuple[
    bytes, bytes, bytes, str, int, int, dict[str, Any], list[tuple[str, dict[str, Any]]], int, str
]


class _SpanRejected(Exception):
    """One span cannot be mapped; the message says why."""


# --------------------------------------------------------------------------------------------
# Entry points.


def decode_protobuf(body: bytes | bytearray, *, json_metadata: bool = False) -> DecodedExport:
    """Decode a binary ``ExportTraceServiceRequest``.

    ``json_metadata``: the exporter JSON-encodes metadata attribute values (see ``SpanView``).
    Compiled installs read ordinary exports straight from the bytes (``_otlp_wire``); the rest,
    and every body in pure Python installs, is parsed by protobuf. Both give the same values.
    """
    walked = None
    if walk_export is not None:
        with contextlib.suppress(TypeError, ValueError, BufferError):  # not a contiguous buffer
            walked = walk_export(body)
    if walked is not None:
        return _decode_groups(walked, json_metadata)
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, TypeError) as exc:
        raise InvalidInput(
            "body", f"not an OTLP ExportTraceServiceRequest protobuf ({exc})"
        ) from None
    return decode_request(request, json_metadata=json_metadata)


def decode_request(
    request: ExportTraceServiceRequest, *, json_metadata: bool = False
) -> DecodedExport:
    """Map every span of a decoded export request."""
    return _decode_groups(request_groups(request), json_metadata)


# An export as mapping reads it: (resource attributes, [((scope name, version, attributes),
# spans), ...]) per resource, each span as ``SpanFields``. ``_otlp_wire.walk_export`` gives
# it in lists; ``request_groups`` reads it from a parsed request as it goes.
SpanGroups = Iterable[
    tuple[dict[str, Any], Iterable[tuple[tuple[str, str, dict[str, Any]], Iterable[SpanFields]]]]
]


def request_groups(request: ExportTraceServiceRequest) -> SpanGroups:
    """A parsed request's resources, scopes and spans, read one at a time."""
    for resource_spans in request.resource_spans:
        resource = attributes_dict(resource_spans.resource.attributes)
        yield (
            resource,
            (
                (
                    (ss.scope.name, ss.scope.version, attributes_dict(ss.scope.attributes)),
                    map(span_fields, ss.spans),
                )
                for ss in resource_spans.scope_spans
            ),
        )


def _decode_groups(groups: SpanGroups, json_metadata: bool) -> DecodedExport:
    out = DecodedExport()
    for resource, scopes in groups:
        for scope_info, spans in scopes:
            for fields in spans:
                _decode_span(fields, resource, scope_info, out, json_metadata)
    return out


def decode_json(body: bytes | Any, *, json_metadata: bool = False) -> DecodedExport:
    """Decode an OTLP/JSON export (bytes/str, or an already parsed object).

    Ids may be lowercase/uppercase hex (OTLP/JSON), base64 (protobuf JSON mapping), integer
    arrays or a serialised Node Buffer ``{"type": "Buffer", "data": [...]}``; 64-bit times may be
    decimal strings, numbers or ``{"high", "low"}`` pairs. A span whose JSON does not fit the
    OTLP schema is rejected on its own.
    """
    payload = body
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            payload = json.loads(body if not isinstance(body, memoryview) else bytes(body))
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("body", "not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("body", "expected a JSON object with 'resourceSpans'")
    out = DecodedExport()
    for resource_spans in _json_list(payload.get("resourceSpans"), "resourceSpans"):
        if not isinstance(resource_spans, dict):
            raise InvalidInput("resourceSpans", "expected an array of objects")
        scopes = _json_list(
            resource_spans.get("scopeSpans", resource_spans.get("instrumentationLibrarySpans")),
            "resourceSpans.scopeSpans",
        )
        try:
            resource = attributes_dict(
                _parse(resource_spans.get("resource"), Resource()).attributes
            )
        except _SpanRejected as exc:
            _reject_all(scopes, f"resource: {exc}", out)
            continue
        for scope_spans in scopes:
            if not isinstance(scope_spans, dict):
                raise InvalidInput("resourceSpans.scopeSpans", "expected an array of objects")
            spans = _json_list(scope_spans.get("spans"), "resourceSpans.scopeSpans.spans")
            try:
                raw_scope = scope_spans.get("scope", scope_spans.get("instrumentationLibrary"))
                scope = _parse(raw_scope, InstrumentationScope())
            except _SpanRejected as exc:
                _reject_all([{"spans": spans}], f"scope: {exc}", out)
                continue
            scope_info = (scope.name, scope.version, attributes_dict(scope.attributes))
            for raw_span in spans:
                try:
                    span = _json_span(raw_span)
                except _SpanRejected as exc:
                    out.span_count += 1
                    trace_id, span_id = _raw_ids(raw_span)
                    out.rejected.append(SpanError(trace_id, span_id, str(exc)))
                    continue
                _decode_span(span_fields(span), resource, scope_info, out, json_metadata)
    return out


# --------------------------------------------------------------------------------------------
# One span.


def span_fields(span: Span) -> SpanFields:
    """What mapping reads of a protobuf ``Span``, as ``_otlp_wire`` reads it from the bytes."""
    status = span.status
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.name,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        attributes_dict(span.attributes),
        [(e.name, attributes_dict(e.attributes)) for e in span.events],
        status.code,
        status.message,
    )


def _decode_span(
    span: SpanFields,
    resource: dict[str, Any],
    scope: tuple[str, str, dict[str, Any]],
    out: DecodedExport,
    json_metadata: bool = False,
) -> None:
    out.span_count += 1
    trace_id = span[0].hex() if span[0] else None
    span_id = span[1].hex() if span[1] else None
    try:
        events = _span_events(span, trace_id, span_id, resource, scope, json_metadata)
    except _SpanRejected as exc:
        out.rejected.append(SpanError(trace_id, span_id, str(exc)))
        return
    except Exception:  # a bug in a mapper: keep the other spans, say which one failed
        log.exception("unexpected error while mapping OTel span %s/%s", trace_id, span_id)
        out.rejected.append(SpanError(trace_id, span_id, "internal error while mapping the span"))
        return
    out.events.extend(events)


def _span_events(
    span: SpanFields,
    trace_id: str | None,
    span_id: str | None,
    resource: dict[str, Any],
    scope: tuple[str, str, dict[str, Any]],
    json_metadata: bool = False,
) -> list[Event]:
    if trace_id is None or len(trace_id) != 32 or trace_id == _ZERO_TRACE:
        raise _SpanRejected("traceId: required, 16 non-zero bytes")
    if span_id is None or len(span_id) != 16 or span_id == _ZERO_SPAN:
        raise _SpanRejected("spanId: required, 8 non-zero bytes")
    _, _, parent, name, start_ns, end_ns, attributes, span_events, status_code, status_message = (
        span
    )
    parent_id = parent.hex() if parent else None
    if parent_id == _ZERO_SPAN:
        parent_id = None

    start_ns = start_ns or end_ns
    end_ns = end_ns or start_ns
    start = _time(start_ns, "startTimeUnixNano")
    end = max(_time(end_ns, "endTimeUnixNano"), start)

    view = SpanView(
        name=name,
        start_time=start,
        attributes=attributes,
        resource=resource,
        scope_name=scope[0],
        scope_version=scope[1],
        scope_attributes=scope[2],
        events=span_events,
        status_code=status_code,
        status_message=status_message,
        has_parent=parent_id is not None,
        json_metadata=json_metadata,
    )
    mapped = map_span(view)
    fields = mapped.observation
    fields["trace_id"] = trace_id
    fields["start_time"] = start
    fields["end_time"] = end
    if parent_id is not None:
        fields["parent_observation_id"] = parent_id
    if fields["type"] == "EVENT":
        del fields["end_time"]
    events = []
    if mapped.trace is not None:
        events.append(Event("trace", trace_id, f"otel:{span_id}:trace", start, True, mapped.trace))
    events.append(Event("observation", span_id, f"otel:{span_id}", start, True, fields))
    return events


def _time(unix_nano: int, path: str) -> datetime:
    if unix_nano <= 0:
        raise _SpanRejected(f"{path}: missing (0); at least one of start/end time is required")
    if unix_nano > _MAX_UNIX_NANO:
        raise _SpanRejected(f"{path}: {unix_nano} is after the year 9999")
    if utc_from_unix_ns is not None and unix_nano <= _MAX_UINT64:
        return utc_from_unix_ns(unix_nano)  # compiled installs: the same time, made in C
    return _EPOCH + timedelta(0, 0, unix_nano // 1000)  # positional: faster than a keyword


# --------------------------------------------------------------------------------------------
# Attribute values.


def attributes_dict(attributes: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` -> ``{key: value}``; a duplicate key: the last one wins."""
    out: dict[str, Any] = {}
    for kv in attributes:
        value = kv.value
        # Most values are non-empty strings: one read each. Otherwise (an empty string, or
        # another type, whose string_value also reads "") the set field decides.
        text = value.string_value
        out[kv.key] = text if text else any_value(value)
    return out


def any_value(value: AnyValue, kind: str | None = "") -> Any:
    """One OTLP ``AnyValue`` as a JSON-compatible Python value (``kind``: its set field)."""
    if kind == "":
        kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


# --------------------------------------------------------------------------------------------
# OTLP/JSON tolerance.

_ID_KEYS = (("traceId", 16), ("spanId", 8), ("parentSpanId", 8))
_TIME_KEYS = ("startTimeUnixNano", "endTimeUnixNano")


def _json_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(path, "expected an array")
    return value


def _parse(raw: Any, message: Any) -> Any:
    if raw is None:
        return message
    if isinstance(raw, dict) and isinstance(raw.get("attributes"), list):
        raw = {**raw, "attributes": [_json_key_value(kv) for kv in raw["attributes"]]}
    try:
        return json_format.ParseDict(raw, message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise _SpanRejected(_short_error(exc)) from None


def _short_error(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


def _json_span(raw: Any) -> Span:
    if not isinstance(raw, dict):
        raise _SpanRejected("span: expected an object")
    span = dict(raw)
    span.pop("links", None)  # links are not stored; their ids would need the same rewriting
    for key, size in _ID_KEYS:
        if key in span:
            value = _json_id(span[key], key, size)
            if value is None:
                del span[key]
            else:
                span[key] = base64.b64encode(value).decode("ascii")
    for key in _TIME_KEYS:
        if key in span:
            span[key] = _json_uint64(span[key], key)
    if isinstance(span.get("events"), list):
        span["events"] = [_json_span_event(e) for e in span["events"]]
    return _parse(span, Span())  # type: ignore[no-any-return]


def _json_span_event(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    event = dict(event)
    if "timeUnixNano" in event:
        event["timeUnixNano"] = _json_uint64(event["timeUnixNano"], "events.timeUnixNano")
    if isinstance(event.get("attributes"), list):
        event["attributes"] = [_json_key_value(kv) for kv in event["attributes"]]
    return event


def _json_key_value(kv: Any) -> Any:
    """A JSON ``KeyValue`` with 64-bit ``intValue`` pairs ``{high, low}`` made decimal strings."""
    if isinstance(kv, dict) and isinstance(kv.get("value"), dict):
        return {**kv, "value": _json_any_value(kv["value"])}
    return kv


def _json_any_value(value: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value.get("intValue"), dict):
        return {**value, "intValue": _json_int64(value["intValue"])}
    array = value.get("arrayValue")
    if isinstance(array, dict) and isinstance(array.get("values"), list):
        values = [_json_any_value(v) if isinstance(v, dict) else v for v in array["values"]]
        return {**value, "arrayValue": {**array, "values": values}}
    kvlist = value.get("kvlistValue")
    if isinstance(kvlist, dict) and isinstance(kvlist.get("values"), list):
        values = [_json_key_value(kv) for kv in kvlist["values"]]
        return {**value, "kvlistValue": {**kvlist, "values": values}}
    return value


def _json_int64(value: dict[str, Any]) -> Any:
    """``{high, low, unsigned?}`` (protobuf.js Long) -> decimal string of the signed 64-bit value."""
    try:
        high, low = int(value["high"]), int(value["low"])
    except (KeyError, TypeError, ValueError):
        raise _SpanRejected(
            "intValue: expected a number, a decimal string or {high, low}"
        ) from None
    number = ((high & 0xFFFFFFFF) << 32) | (low & 0xFFFFFFFF)
    if number >= 1 << 63 and not value.get("unsigned"):
        number -= 1 << 64
    return str(number)


def _json_id(value: Any, path: str, size: int) -> bytes | None:
    """An id in any shape Langfuse accepts -> its bytes (None when empty)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) == 2 * size and _HEX.fullmatch(value):
            return bytes.fromhex(value)
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == size:
            return decoded
        raise _SpanRejected(f"{path}: {value[:40]!r} is not a {size}-byte hex or base64 id")
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if (
        isinstance(value, list)
        and len(value) == size
        and all(isinstance(b, int) and 0 <= b < 256 for b in value)
    ):
        return bytes(value)
    raise _SpanRejected(f"{path}: not an id of {size} bytes")


def _json_uint64(value: Any, path: str) -> Any:
    if isinstance(value, dict) and "high" in value and "low" in value:
        try:
            return str((int(value["high"]) << 32) | (int(value["low"]) & 0xFFFFFFFF))
        except (TypeError, ValueError):
            raise _SpanRejected(f"{path}: invalid {{high, low}} pair") from None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise _SpanRejected(f"{path}: not a valid time")
        return str(int(value))
    return value


def _raw_ids(raw: Any) -> tuple[str | None, str | None]:
    if not isinstance(raw, dict):
        return None, None
    ids: list[str | None] = []
    for key, size in _ID_KEYS[:2]:
        try:
            value = _json_id(raw.get(key), key, size)
            ids.append(value.hex() if value is not None else None)
        except _SpanRejected:
            ids.append(raw[key] if isinstance(raw.get(key), str) else None)
    return ids[0], ids[1]


def _reject_all(scopes: list[Any], message: str, out: DecodedExport) -> None:
    for scope_spans in scopes:
        spans = scope_spans.get("spans") if isinstance(scope_spans, dict) else None
        for raw_span in spans if isinstance(spans, list) else []:
            out.span_count += 1
            out.rejected.append(SpanError(*_raw_ids(raw_span), message))
