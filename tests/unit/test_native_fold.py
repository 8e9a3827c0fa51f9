"""The native first-event fold (``domain/_fold.pyx``, compiled installs) against the Python
method it stands in for (``Record._apply_to_empty``): the same values and merge keys, in the
same order, for events of every kind and every value a field may hold."""

from __future__ import annotations

import random
from collections import OrderedDict, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tracehouse.domain import merge
from tracehouse.domain.events import FIELDS_BY_KIND, Event

try:
    from tracehouse.domain import _fold
except ImportError:
    _fold = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    _fold is None, reason="the native helpers exist in compiled installs only"
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


class Key(str):
    """A str subclass as a metadata key: formatted its own way into the merge field."""

    def __format__(self, spec: str) -> str:
        return "formatted"


def _value(rng: random.Random, field: str) -> Any:
    pool: list[Any] = [
        None,
        "",
        "text",
        0,
        1.5,
        False,
        True,
        [],
        ["b", "a", "b"],
        {},
        {"a": 1, "b": {"c": None}},
        {1: "int key", "x": [1]},
        {Key("k"): 1},
        OrderedDict([("z", 1), ("y", 2)]),
        T0 + timedelta(seconds=rng.randint(0, 100)),
    ]
    if field == "tags":
        pool += [["t2", "t1"], ("t",), {"only"}]
    return rng.choice(pool)


def _fields(rng: random.Random, kind: str) -> dict[str, Any]:
    names = sorted(FIELDS_BY_KIND[kind]) + ["not_a_field", "metadata.a"]
    chosen = rng.sample(names, rng.randint(0, len(names)))
    return {name: _value(rng, name) for name in chosen}


def _outcome(kind: str, event: Event, native: bool) -> tuple[Any, ...]:
    """The record's values and keys (in order) after the event, and the error it raised."""
    record = merge.Record(kind)
    try:
        if native:
            record.apply(event)
        else:
            record._apply_to_empty(event, merge.merge_key(event))
    except TypeError as exc:  # tags that do not sort (the wire formats send lists of strings)
        return [], [], str(exc)  # the write fails; what the record held meanwhile is dropped
    return list(record.values.items()), list(record.keys.items()), None


@pytest.mark.parametrize("kind", ["trace", "observation", "score"])
def test_first_event_gives_the_python_values_and_keys(kind: str) -> None:
    rng = random.Random(kind)
    for i in range(5_000):
        event = Event(
            kind=kind,  # type: ignore[arg-type]
            entity_id="e",
            event_id=str(i),
            timestamp=T0 + timedelta(microseconds=rng.randint(0, 10**6)),
            is_create=rng.random() < 0.7,
            fields=_fields(rng, kind),
            weak=rng.random() < 0.2,
        )
        native = _outcome(kind, event, native=True)
        python = _outcome(kind, event, native=False)
        assert native == python, event.fields
        for (field, value), (_, expected) in zip(native[0], python[0], strict=True):
            # The same objects where Python keeps them, copies where it copies.
            sent = event.fields.get(field)
            assert (value is sent) == (expected is sent)


def test_other_dict_types_go_to_python() -> None:
    apply = merge._apply_to_empty_natively
    assert apply is not None
    rules = merge.RULES["observation"]
    key = (1, "2026-01-02T03:04:05.000006", 0)
    assert apply(defaultdict(int, name="n"), rules, key) is None
    assert apply({"name": "n"}, OrderedDict(rules), key) is None
    assert apply({"name": "n"}, rules, key) == ({"name": "n"}, {"name": key})
    event = Event("observation", "e", "1", T0, True, defaultdict(int, name="n"))
    record = merge.Record("observation")
    record.apply(event)
    assert record.values == {"name": "n"}
    assert record.keys == {"name": merge.merge_key(event)}
