"""Merging is order-independent and idempotent: any arrival order gives the same record."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tracehouse.domain.events import Event
from tracehouse.domain.merge import Record, decode_keys, encode_keys

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(kind, fields, seconds, *, create=True, weak=False, entity="e1"):
    return Event(
        kind,
        entity,
        f"evt-{seconds}-{create}",
        T0 + timedelta(seconds=seconds),
        create,
        fields,
        weak,
    )


def fold_in(order, kind="observation", through_storage=False):
    record = Record(kind)
    for event in order:
        if through_storage:  # as if each event came in its own request
            record = Record(kind, dict(record.values), decode_keys(encode_keys(record.keys)))
        record.apply(event)
    return record.values


HISTORY = [
    ev(
        "observation",
        {
            "name": "llm",
            "input": "X",
            "model": "gpt-4o",
            "start_time": T0,
            "metadata": {"a": 1, "n": {"x": 1}},
        },
        1,
    ),
    ev(
        "observation",
        {
            "output": "Y",
            "end_time": T0,
            "usage_details": {"input": 10},
            "metadata": {"b": 2, "n": {"y": 2}},
        },
        2,
        create=False,
    ),
    ev(
        "observation",
        {"name": "llm-renamed", "level": "WARNING", "metadata": {"a": 3}},
        3,
        create=False,
    ),
    ev("observation", {"model": None, "status_message": None}, 4, create=False),
]


def test_every_arrival_order_gives_the_same_record():
    expected = fold_in(HISTORY)
    assert expected["name"] == "llm-renamed"
    assert expected["model"] is None  # explicit null clears model
    assert expected["metadata"] == {"a": 3, "n": {"x": 1, "y": 2}, "b": 2}
    for order in itertools.permutations(HISTORY):
        assert fold_in(order) == expected
        assert fold_in(order, through_storage=True) == expected


def test_replaying_events_changes_nothing():
    once = fold_in(HISTORY)
    assert fold_in(HISTORY + HISTORY[::-1]) == once


def test_first_value_wins_for_immutable_fields():
    values = fold_in(
        [
            ev("trace", {"timestamp": T0 + timedelta(seconds=9), "environment": "b"}, 9),
            ev("trace", {"timestamp": T0 + timedelta(seconds=1), "environment": "a"}, 1),
        ],
        kind="trace",
    )
    assert values["timestamp"] == T0 + timedelta(seconds=1)
    assert values["environment"] == "a"


def test_weak_values_lose_to_any_sent_value():
    values = fold_in(
        [
            ev("trace", {"timestamp": T0 + timedelta(seconds=5), "name": "sent"}, 5),
            ev("trace", {"timestamp": T0, "environment": "implied"}, 0, weak=True),
        ],
        kind="trace",
    )
    assert values["timestamp"] == T0 + timedelta(seconds=5)
    assert values["environment"] == "implied"  # nobody sent one


def test_tags_accumulate_sorted():
    values = fold_in(
        [ev("trace", {"tags": ["b", "a"]}, 1), ev("trace", {"tags": ["c", "a"]}, 0)], kind="trace"
    )
    assert values["tags"] == ["a", "b", "c"]


def test_create_before_update_on_equal_timestamps():
    create = ev("observation", {"name": "from-create"}, 1)
    update = ev("observation", {"name": "from-update"}, 1, create=False)
    assert fold_in([update, create])["name"] == "from-update"
    assert fold_in([create, update])["name"] == "from-update"


def test_stored_merge_keys_use_short_codes_and_old_rows_still_decode():
    keys = {
        "name": (1, "2026-01-01T00:00:00.000000", 0),
        "metadata.tier": (1, "2026-01-01T00:00:00.000000", 0),
        "metadata.#3": (0, "2026-01-02T00:00:00.000000", 1),
        "metadata..dot": (0, "2026-01-02T00:00:00.000000", 1),
        "execution_trace_id": (1, "2026-01-01T00:00:00.000000", 0),
    }
    stored = encode_keys(keys)
    assert stored == {
        "1|2026-01-01T00:00:00.000000|0": ["#1", ".tier", "#37"],
        "0|2026-01-02T00:00:00.000000|1": [".#3", "..dot"],
    }
    assert decode_keys(stored) == keys
    # rows written with whole names (before the codes) decode as they are
    old = {"1|2026-01-01T00:00:00.000000|0": ["name", "metadata.tier", "execution_trace_id"]}
    assert decode_keys(old) == {k: v for k, v in keys.items() if v[0] == 1}
