"""Stream entries carry events as tagged JSON: decoding gives back exactly what was encoded."""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum

import orjson
import pytest

from tracehouse.domain.events import Event
from tracehouse.ingest.stream import (
    FORMAT,
    UndecodableEntry,
    decode_entry,
    decode_value,
    encode_value,
    entry_fields,
)

T = datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)


def _entry(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    """What Redis hands back: byte keys."""
    return {k.encode(): v for k, v in fields.items()}


def _same(a, b) -> bool:
    """Equal, with equal types all the way down (and NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return (
            a == b and a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)
        )
    return bool(a == b)


def test_events_round_trip_exactly():
    events = [
        Event(
            kind="observation",
            entity_id="obs-1",
            event_id="evt-1",
            timestamp=T,
            is_create=True,
            fields={
                "trace_id": "trace-1",
                "start_time": T,
                "end_time": T + timedelta(seconds=1.5),
                "completion_start_time": None,
                "input": {"messages": [{"role": "user", "content": "héllo ✓"}], "n": [1, 2.5]},
                "metadata": {"nested": {"deep": {"list": [True, False, None, {"x": 1}]}}},
                "usage_details": {"input": 10, "output": 20, "total": 30},
                "cost_details": {"input": Decimal("0.000123"), "total": Decimal("1E-7")},
                "model_parameters": {"temperature": 0.7, "max_tokens": 2**70},
            },
        ),
        Event(
            kind="trace",
            entity_id="trace-1",
            event_id="evt-2",
            timestamp=datetime(2026, 1, 15, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            is_create=False,
            fields={"tags": ["a", "b"], "name": None, "public": False, "output": 0},
            weak=True,
        ),
        Event(
            kind="score",
            entity_id="score-1",
            event_id="evt-3",
            timestamp=T,
            is_create=True,
            fields={"value": 0.5, "string_value": "", "data_type": "NUMERIC"},
        ),
    ]
    project, decoded = decode_entry(_entry(entry_fields("proj-ü", events)))
    assert project == "proj-ü"
    assert len(decoded) == len(events)
    for before, after in zip(events, decoded, strict=True):
        assert after.kind == before.kind
        assert after.entity_id == before.entity_id
        assert after.event_id == before.event_id
        assert after.is_create is before.is_create
        assert after.weak is before.weak
        assert _same(before.timestamp, after.timestamp)
        assert _same(before.fields, after.fields), (before.fields, after.fields)


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        0,
        -(2**63),
        2**64 - 1,
        2**64,
        -(2**100),
        1.25,
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        None,
        [1, "a", None, [2.5, {"k": "v"}]],
        (1, (2, "x"), [3]),
        {"a": {"b": {"c": [1, 2, {"d": None}]}}},
        {1: "int key", None: "null key", (1, 2): "tuple key"},
        {"$tracehouse": "a user's key that looks like the tag", "v": 1},
        {"$tracehouse": "datetime", "v": "2026-01-01T00:00:00+00:00"},
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 1, 1, 12, 30),  # naive stays naive
        date(2026, 2, 28),
        time(12, 30, 15, 250),
        timedelta(days=-1, seconds=5, microseconds=7),
        Decimal("123.4500"),
        Decimal("-0"),
        b"\x00\xffbytes",
        {"deep": [{"at": datetime(2026, 1, 1, tzinfo=UTC), "cost": Decimal("0.1")}]},
    ],
)
def test_values_round_trip_exactly(value):
    wire = orjson.dumps(encode_value(value))
    assert _same(value, decode_value(orjson.loads(wire)))


def test_subclasses_of_json_types_keep_their_plain_value():
    class Color(str, Enum):  # noqa: UP042 - str() of this is "Color.RED", not its value
        RED = "red"

    wire = orjson.dumps(encode_value({"c": Color.RED, "o": OrderedDict(a=1)}))
    assert decode_value(orjson.loads(wire)) == {"c": "red", "o": {"a": 1}}


def test_unknown_types_are_refused_at_encoding():
    with pytest.raises(TypeError):
        encode_value({"x": object()})


@pytest.mark.parametrize(
    "fields",
    [
        {"f": b"9", "p": b"p", "e": b"[]"},  # a format this version does not know
        {"f": FORMAT, "e": b"[]"},  # no project
        {"f": FORMAT, "p": b"p", "e": b"not json"},
        {"f": FORMAT, "p": b"p", "e": b'[["nonsense", "id", "e", "x", true, false, {}]]'},
        {"f": FORMAT, "p": b"p", "e": b'[["trace", "id", "e", "not a time", true, false, {}]]'},
        {"f": FORMAT, "p": b"p", "e": b'[["trace", "id"]]'},
        {"f": FORMAT, "p": b"p", "e": b'[["trace","i","e",{"$tracehouse":"?","v":1},1,0,{}]]'},
        {"f": FORMAT, "p": b"\xff", "e": b"[]"},
    ],
)
def test_malformed_entries_are_undecodable(fields):
    with pytest.raises(UndecodableEntry):
        decode_entry(_entry(fields))
