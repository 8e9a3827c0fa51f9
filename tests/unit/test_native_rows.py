"""The native row helpers (``store/_rows.pyx``, compiled installs) against the Python code they
stand in for: the same answer on which fields a row holds, the same parameters with NULLs."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from tracehouse.store import writes

try:
    from tracehouse.store import _rows
except ImportError:
    _rows = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    _rows is None, reason="the native helpers exist in compiled installs only"
)

KEY = (1, "2026-01-02T03:04:05.000006", 0)
OTHER_KEY = (0, "2026-01-02T03:04:05.000006", 0)


class Name(str):
    """A str subclass: equal to its text, and printed differently."""

    def __str__(self) -> str:
        return "other"

    def __format__(self, spec: str) -> str:
        return "other"


def _value(rng: random.Random, field: str) -> Any:
    if field in ("usage_details", "cost_details"):
        return rng.choice([None, {}, {"input": 3}, 0, "", [], {"total": 0.5}])
    if field == "metadata":
        return rng.choice(
            [
                None,
                {},
                {"a": 1},
                {"resourceAttributes": {"x": 1}, "scope": {"name": "s"}, "attributes": {}},
                "text",
                [1, 2],
                {"a": 1, 2: "int key"},
                {Name("n"): 1},
            ]
        )
    return rng.choice([None, "v", 0, "", {}, [], False, 1.5])


def _case(rng: random.Random, columns: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values of a row and merge keys that match its held fields, or nearly."""
    names = sorted(columns) + ["not_a_column", "metadata.a"]
    values = {name: _value(rng, name) for name in rng.sample(names, rng.randint(0, len(names)))}
    try:
        held = writes._held_fields(values, columns)
    except TypeError:
        held = set()
    keys = dict.fromkeys(sorted(held, key=str), KEY)
    change = rng.randrange(6)
    if change == 1 and keys:
        del keys[rng.choice(list(keys))]
    elif change == 2:
        keys[rng.choice(names + ["metadata.zzz", "metadata.scope", "metadata."])] = KEY
    elif change == 3 and keys:
        keys.pop(rng.choice(list(keys)))
        keys[rng.choice(names + ["metadata.b"])] = OTHER_KEY
    elif change == 4:
        keys = {}
    return keys, values


@pytest.mark.parametrize("kind", ["observation", "trace"])
def test_held_fields_match_the_python_check(kind: str) -> None:
    columns = writes._KEYED_COLUMNS[kind]
    rng = random.Random(kind)
    answers = {True: 0, False: 0, None: 0}
    for _ in range(20_000):
        keys, values = _case(rng, columns)
        native = _rows.holds_exactly(keys, values, columns, writes._PROVIDED)
        answers[native] += 1
        metadata = values.get("metadata")
        odd_keys = isinstance(metadata, dict) and any(type(k) is not str for k in metadata)
        if native is None:
            # Only where the Python check builds names from keys that are not plain str.
            assert odd_keys and "metadata" in columns and metadata is not None
            continue
        assert native == (keys.keys() == writes._held_fields(values, columns)), (keys, values)
    assert answers[True] > 1_000 and answers[False] > 1_000 and answers[None] > 10


def test_held_fields_leave_other_types_to_python() -> None:
    columns = writes._KEYED_COLUMNS["observation"]
    assert _rows.holds_exactly(list(), {}, columns, writes._PROVIDED) is None
    assert _rows.holds_exactly({}, [], columns, writes._PROVIDED) is None
    assert _rows.holds_exactly({}, {}, set(columns), writes._PROVIDED) is None

    class Keys(dict[str, Any]):
        pass

    assert _rows.holds_exactly(Keys(), {}, columns, writes._PROVIDED) is None
    assert _rows.holds_exactly({}, {}, columns, writes._PROVIDED) is True


def test_single_key_is_the_same_with_and_without_the_native_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    columns = writes._KEYED_COLUMNS["observation"]
    rng = random.Random(7)
    cases = [_case(rng, columns) for _ in range(3_000)]
    native = [writes._single_key("observation", keys, values) for keys, values in cases]
    monkeypatch.setattr(writes, "holds_exactly", None)
    python = [writes._single_key("observation", keys, values) for keys, values in cases]
    assert native == python
    assert sum(1 for answer in native if answer is not None) > 300


def test_nulls_as_replaces_none_only() -> None:
    null = float("nan")
    marker = object()
    rng = random.Random(3)
    pool: list[Any] = [None, 0, "", False, 1.5, marker, (), b"x", null]
    for size in range(0, 60):
        values = tuple(rng.choice(pool) for _ in range(size))
        out = _rows.nulls_as(values, null)
        assert type(out) is list
        assert len(out) == len(values)
        for got, sent in zip(out, values, strict=True):
            assert got is (null if sent is None else sent)
    assert _rows.nulls_as([None, 1], None) == [None, 1]  # not a tuple: the Python way
    assert math.isnan(_rows.nulls_as((None,), null)[0])
