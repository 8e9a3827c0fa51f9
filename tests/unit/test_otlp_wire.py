"""The native OTLP reader (``_otlp_wire``, compiled installs) against protobuf's own parser.

Whatever it reads must equal what protobuf parses (``otlp.span_fields``, ``attributes_dict``);
whatever it cannot read exactly it must hand back (None), so that protobuf decides, also for
bodies protobuf refuses. Generated exports cover every value type and shape; corrupted ones
(bytes flipped, cut, inserted, repeated) cover the wire format's edges.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracehouse.errors import InvalidInput
from tracehouse.ingest import otlp

pytestmark = pytest.mark.skipif(
    otlp.walk_export is None, reason="the native reader exists in compiled installs only"
)

walk = otlp.walk_export


def parsed(body: bytes) -> Any:
    """What protobuf reads of ``body``, in the reader's shape (DecodeError if it refuses)."""
    request = ExportTraceServiceRequest.FromString(body)
    return [
        (resource, [(scope, list(spans)) for scope, spans in scopes])
        for resource, scopes in otlp.request_groups(request)
    ]


def same(a: Any, b: Any) -> bool:
    """Equal, with float NaN equal to itself (no NaN reaches here: both give "NaN")."""
    return type(a) is type(b) and a == b and repr(a) == repr(b)


# --------------------------------------------------------------------------------------------
# Generated exports.

_TEXTS = ["", "a", "gen_ai.request.model", "gpt-4o", "ünïcödé ✓", "😀" * 3, "x" * 70, "y" * 300]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 90)))
    return rng.choice(_TEXTS)


def _fill(rng: random.Random, value: AnyValue, depth: int) -> None:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        if rng.random() < 0.5:
            value.SetInParent()  # an empty value message: None, as no value at all
        return
    if kind == 1:
        value.string_value = _text(rng)
    elif kind == 2:
        value.bool_value = rng.random() < 0.5
    elif kind == 3:
        value.int_value = rng.choice(
            [0, 1, -1, 2**63 - 1, -(2**63), rng.randrange(-(10**12), 10**12)]
        )
    elif kind == 4:
        value.double_value = rng.choice([0.0, -0.0, 1.5, -2.25e300, math.inf, -math.inf, math.nan])
    elif kind == 5:
        value.bytes_value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
    elif kind in (6, 7):
        value.array_value.SetInParent()
        for _ in range(rng.randrange(0, 4)):
            _fill(rng, value.array_value.values.add(), depth + 1)
    else:
        value.kvlist_value.SetInParent()
        _attributes(rng, value.kvlist_value.values, depth + 1)


def _attributes(rng: random.Random, target: Any, depth: int = 0) -> None:
    for _ in range(rng.randrange(0, 8)):
        kv = target.add()
        kv.key = _text(rng) if rng.random() < 0.2 else f"attr.{rng.randrange(12)}"  # repeats
        if rng.random() < 0.9:
            _fill(rng, kv.value, depth)


def random_export(rng: random.Random) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(rng.randrange(0, 3)):
        rs = request.resource_spans.add()
        if rng.random() < 0.8:
            _attributes(rng, rs.resource.attributes)
        if rng.random() < 0.3:
            rs.schema_url = _text(rng)
        for _ in range(rng.randrange(0, 3)):
            ss = rs.scope_spans.add()
            if rng.random() < 0.8:
                ss.scope.name = _text(rng)
                ss.scope.version = rng.choice(["", "1.2.3", "3.3"])
                _attributes(rng, ss.scope.attributes)
            for _ in range(rng.randrange(0, 5)):
                _span(rng, ss.spans.add())
    return request


def _span(rng: random.Random, span: Span) -> None:
    if rng.random() < 0.95:
        span.trace_id = rng.choice([rng.randbytes(16), bytes(16), rng.randbytes(5)])
    if rng.random() < 0.95:
        span.span_id = rng.choice([rng.randbytes(8), bytes(8), rng.randbytes(3)])
    if rng.random() < 0.6:
        span.parent_span_id = rng.choice([rng.randbytes(8), bytes(8)])
    span.name = _text(rng)
    span.kind = rng.randrange(6)
    span.start_time_unix_nano = rng.choice([0, 1, 1_700_000_000_000_000_000, 2**64 - 1])
    span.end_time_unix_nano = rng.choice([0, (span.start_time_unix_nano + 5) % 2**64, 2**63])
    if rng.random() < 0.3:
        span.trace_state = _text(rng)
    _attributes(rng, span.attributes)
    for _ in range(rng.randrange(0, 3)):
        event = span.events.add()
        event.name = _text(rng)
        event.time_unix_nano = rng.randrange(2**64)
        _attributes(rng, event.attributes)
    if rng.random() < 0.5:
        span.status.code = rng.choice([0, 1, 2, 7, -3])
        span.status.message = _text(rng)
    span.dropped_attributes_count = rng.randrange(3)
    span.flags = rng.randrange(2**32)


def test_generated_exports_read_as_protobuf_reads_them() -> None:
    rng = random.Random(6)
    for _ in range(400):
        body = random_export(rng).SerializeToString()
        walked = walk(body)
        assert walked is not None
        assert same(walked, parsed(body))
        # Through the whole decoder: the same events and rejections as from the parsed request.
        from_bytes = otlp.decode_protobuf(body)
        from_request = otlp.decode_request(ExportTraceServiceRequest.FromString(body))
        assert [(e.kind, e.entity_id, e.fields) for e in from_bytes.events] == [
            (e.kind, e.entity_id, e.fields) for e in from_request.events
        ]
        assert from_bytes.rejected == from_request.rejected
        assert from_bytes.span_count == from_request.span_count


def test_bytes_bytearray_and_memoryview_bodies() -> None:
    body = random_export(random.Random(1)).SerializeToString()
    expected = parsed(body)
    for form in (body, bytearray(body), memoryview(body)):
        assert same(walk(form), expected)
    assert walk(b"") == []
    # Not a bytes-like body: the reader refuses it, and protobuf's refusal is the answer.
    for wrong in ("text", memoryview(body)[::2]):
        with pytest.raises((TypeError, ValueError, BufferError)):
            walk(wrong)
        with pytest.raises(InvalidInput):
            otlp.decode_protobuf(wrong)


def test_many_distinct_short_strings_replace_each_other_in_the_cache() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    for i in range(5000):  # more than the cache's slots, twice over the same keys
        kv = span.attributes.add()
        kv.key = f"k{i % 2500}"
        kv.value.string_value = f"v{i}"
    body = request.SerializeToString()
    for _ in range(2):
        walked = walk(body)
        assert same(walked, parsed(body))
        attributes = walked[0][1][0][1][0][6]
        assert attributes["k7"] == "v2507" and len(attributes) == 2500


# --------------------------------------------------------------------------------------------
# Corrupted exports: the reader never disagrees with protobuf; it may only hand the body back.


def _mutations(rng: random.Random, body: bytes) -> list[bytes]:
    out = []
    for _ in range(60):
        data = bytearray(body)
        action = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if action == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action == 1:
            del data[at:]
        elif action == 2:
            data[at:at] = rng.randbytes(rng.randrange(1, 4))
        elif action == 3 and data:
            end = min(len(data), at + rng.randrange(1, 30))
            data[end:end] = data[at:end]  # a repeated run: repeated fields, broken lengths
        else:
            del data[at : at + rng.randrange(1, 4)]
        out.append(bytes(data))
    return out


def test_corrupted_exports_are_read_as_protobuf_reads_them_or_handed_back() -> None:
    rng = random.Random(7)
    read = handed_back = refused = 0
    for _ in range(150):
        body = random_export(rng).SerializeToString()
        for mutated in _mutations(rng, body):
            walked = walk(mutated)
            try:
                expected = parsed(mutated)
            except DecodeError:
                refused += 1
                assert walked is None
                with pytest.raises(InvalidInput):
                    otlp.decode_protobuf(mutated)
                continue
            if walked is None:
                handed_back += 1
            else:
                read += 1
                assert same(walked, expected)
    # The corruption reaches every outcome, so each of the assertions above is exercised.
    assert read > 500 and handed_back > 0 and refused > 500, (read, handed_back, refused)


# --------------------------------------------------------------------------------------------
# What the reader hands back to protobuf, and what it skips itself.


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


def _export_of_span(span_bytes: bytes) -> bytes:
    """An export of one span given as raw bytes, inside one resource and one scope."""
    scope_spans = _len_field(2, span_bytes)
    resource_spans = _len_field(2, scope_spans)
    return _len_field(1, resource_spans)


def _plain_span(**attributes: Any) -> Span:
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s", start_time_unix_nano=5)
    for key, value in attributes.items():
        span.attributes.add(key=key, value=AnyValue(string_value=value))
    return span


def _deep_value(levels: int) -> AnyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(levels):
        outer = AnyValue()
        outer.array_value.values.append(value)
        value = outer
    return value


_LINKED = _plain_span()
_LINKED.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8)

_KEY_VALUE = KeyValue(key="k", value=AnyValue(string_value="v")).SerializeToString()

HANDED_BACK = {
    "span links": _LINKED.SerializeToString(),
    "a second status (merged by protobuf)": _plain_span().SerializeToString()
    + _len_field(15, Status(code=2).SerializeToString())
    + _len_field(15, Status(message="m").SerializeToString()),
    "a second value message in a key-value (merged)": _plain_span().SerializeToString()
    + _len_field(9, _KEY_VALUE + _len_field(2, AnyValue(int_value=3).SerializeToString())),
    "two value fields in one AnyValue": _plain_span().SerializeToString()
    + _len_field(
        9,
        _len_field(1, b"k")
        + _len_field(2, AnyValue(string_value="a").SerializeToString() + _tag(3, 0) + b"\x05"),
    ),
    "a known field with another wire type": _plain_span().SerializeToString()
    + _tag(5, 0)
    + b"\x01",
    "a group": _plain_span().SerializeToString() + _tag(40, 3) + _tag(40, 4),
    "values nested 45 levels deep": _plain_span().SerializeToString()
    + _len_field(9, _len_field(1, b"k") + _len_field(2, _deep_value(45).SerializeToString())),
}

if 3 in KeyValue.DESCRIPTOR.fields_by_number:  # key_strindex, in newer schemas
    HANDED_BACK["a field of the schema the reader does not read (key_strindex)"] = (
        _plain_span().SerializeToString()
        + _len_field(9, _len_field(1, b"k") + _tag(3, 0) + b"\x01")
    )

REFUSED = {
    "a key that is not UTF-8": _plain_span().SerializeToString()
    + _len_field(9, _len_field(1, b"\xff\xfe")),
    "a trace state that is not UTF-8": _plain_span().SerializeToString() + _len_field(3, b"\xc3"),
    "a surrogate in a span name": _plain_span().SerializeToString()
    + _len_field(5, b"\xed\xa0\x80"),
    "field number 0": _plain_span().SerializeToString() + _tag(0, 0) + b"\x01",
    "wire type 7": _plain_span().SerializeToString() + _tag(20, 7),
    "a length past the end": _plain_span().SerializeToString() + _tag(5, 2) + b"\x7f" + b"ab",
    "an 11-byte varint": _plain_span().SerializeToString() + _tag(6, 0) + b"\xff" * 10 + b"\x01",
}


@pytest.mark.parametrize("case", sorted(HANDED_BACK))
def test_what_protobuf_reads_differently_is_handed_back(case: str) -> None:
    body = _export_of_span(HANDED_BACK[case])
    assert walk(body) is None
    expected = otlp.decode_request(ExportTraceServiceRequest.FromString(body))
    decoded = otlp.decode_protobuf(body)
    assert [e.fields for e in decoded.events] == [e.fields for e in expected.events]
    assert decoded.span_count == 1


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_malformed_bodies_are_handed_back_and_refused_by_protobuf(case: str) -> None:
    body = _export_of_span(REFUSED[case])
    assert walk(body) is None
    with pytest.raises(InvalidInput) as err:
        otlp.decode_protobuf(body)
    assert err.value.field == "body"


def test_values_nested_17_levels_are_read_and_18_handed_back() -> None:
    for levels, read in ((17, True), (18, False)):
        span = _plain_span().SerializeToString() + _len_field(
            9, _len_field(1, b"k") + _len_field(2, _deep_value(levels).SerializeToString())
        )
        body = _export_of_span(span)
        walked = walk(body)
        assert (walked is not None) is read, levels
        if read:
            assert same(walked, parsed(body))


def test_fields_the_schema_does_not_know_are_skipped() -> None:
    unknown = (
        _tag(50, 0) + _varint(2**40)
        + _tag(51, 1) + struct.pack("<d", 1.0)
        + _tag(52, 2) + _varint(3) + b"\xff\x00\x01"  # not UTF-8: unknown bytes are not checked
        + _tag(53, 5) + b"\x00\x00\x00\x01"
    )  # fmt: skip
    value = AnyValue(string_value="v").SerializeToString() + unknown
    status = Status(code=2, message="bad").SerializeToString() + unknown
    span = (
        _plain_span().SerializeToString()
        + unknown
        + _len_field(9, _len_field(1, b"k") + _len_field(2, value) + unknown)
        + _len_field(15, status)
    )
    body = _export_of_span(span) + unknown
    walked = walk(body)
    assert walked is not None and same(walked, parsed(body))
    fields = walked[0][1][0][1][0]
    assert fields[6] == {"k": "v"} and fields[8:] == (2, "bad")


def test_repeated_scalar_fields_keep_their_last_value() -> None:
    span = (
        _plain_span().SerializeToString()
        + _len_field(5, b"second name")
        + _tag(7, 1) + struct.pack("<Q", 9)
        + _len_field(1, b"\x07" * 16)
    )  # fmt: skip
    body = _export_of_span(span)
    walked = walk(body)
    assert walked is not None and same(walked, parsed(body))
    trace_id, _, _, name, start_ns = walked[0][1][0][1][0][:5]
    assert (trace_id, name, start_ns) == (b"\x07" * 16, "second name", 9)
