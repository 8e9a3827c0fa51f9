"""The native row helpers (``store/_rows.pyx``, compiled installs) against the Python code they
stand in for: the same answer on which fields a row holds, the same parameters with NULLs."""

from __future__ import annotations

import functools
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Boolean, Float, Integer

from tracehouse.store import writes
from tracehouse.store.types import JsonText, UtcDateTime

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
            assert odd_keys and "metadata" in columns
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
    metadata = Keys(a=1)  # a dict subclass may iterate its own way
    assert _rows.holds_exactly({}, {"metadata": metadata}, columns, writes._PROVIDED) is None

    class Field(str):
        pass

    held = {"name": "n"}
    assert _rows.holds_exactly({"name": 1}, held, columns, writes._PROVIDED) is True
    assert _rows.holds_exactly({Field("name"): 1}, held, columns, writes._PROVIDED) is True
    assert _rows.holds_exactly({Field("zzz"): 1}, held, columns, writes._PROVIDED) is None


def test_single_key_is_written_exactly_where_the_python_check_allows_it() -> None:
    columns = writes._KEYED_COLUMNS["observation"]
    rng = random.Random(7)
    written = 0
    for _ in range(3_000):
        keys, values = _case(rng, columns)
        if rng.random() < 0.1 and keys:
            keys[next(iter(keys))] = OTHER_KEY  # two keys: never the single form
        allowed = (
            bool(keys)
            and len(set(keys.values())) == 1
            and keys.keys() == writes._held_fields(values, columns)
        )
        single = writes._single_key("observation", keys, values)
        assert (single is not None) == allowed, (keys, values)
        if single is not None:
            assert single == "|".join(map(str, next(iter(keys.values()))))  # the key itself
            written += 1
    assert written > 300


def _python_parameters(values: tuple[Any, ...], null: Any, converters: Any) -> list[Any]:
    """What the write path computes without the native module (``_UpsertSql.params_of``)."""
    names = tuple(f"c{i}" for i in range(len(values)))
    upsert = writes._UpsertSql("", True, names, converters, null=null)
    return upsert.params_of(values)


def test_parameters_replace_none_and_convert_like_python() -> None:
    nan = float("nan")
    marker = object()
    rng = random.Random(3)
    pool: list[Any] = [None, 0, "", False, 1.5, marker, (), b"x", nan, "text"]
    for null in (nan, None):
        for size in range(1, 60):
            values = tuple(rng.choice(pool) for _ in range(size))
            positions = sorted(rng.sample(range(size), rng.randint(0, size)))
            converters = tuple((i, rng.choice([repr, str, lambda v: [v]])) for i in positions)
            out = _rows.parameters(values, null, converters)
            expected = _python_parameters(values, null, converters)
            assert type(out) is list
            assert len(out) == len(expected)
            for got, want, sent in zip(out, expected, values, strict=True):
                if sent is None or sent is marker or sent is nan:
                    assert got is want or got == want
                else:
                    assert got == want
    assert _rows.parameters([None, 1], nan, ()) is None  # not a tuple: the Python way
    assert math.isnan(_rows.parameters((None,), nan, ())[0])
    assert _rows.parameters((None, "a"), nan, ((0, str), (1, str.upper)))[1] == "A"


def test_row_parameters_are_the_python_ones() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from tracehouse.store.schema import observations, traces

    rng = random.Random(11)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        for table in (observations, traces):
            upsert = writes._upsert_sql_for(dialect, table, True)
            rows = []
            for _ in range(200):
                row = {name: _column_value(rng, table.c[name].type) for name in upsert.names}
                if rng.random() < 0.2:
                    del row[rng.choice(upsert.names)]  # a missing column binds NULL
                rows.append(row)
            native = [_encoded(upsert.params, row) for row in rows]
            in_python = functools.partial(_python_params, upsert)
            python = [_encoded(in_python, row) for row in rows]
            assert native == python


def _column_value(rng: random.Random, type_: Any) -> Any:
    """A value a column of ``type_`` takes, or None."""
    if rng.random() < 0.3:
        return None
    if isinstance(type_, UtcDateTime):
        return datetime(2026, 1, 2, 3, 4, 5, rng.randrange(10**6), tzinfo=UTC)
    if isinstance(type_, JsonText):
        return rng.choice([{"a": [1, "x" * rng.randrange(300)]}, "text", 3, [None, True], {}])
    if isinstance(type_, Float):
        return rng.random()
    if isinstance(type_, Boolean):
        return rng.random() < 0.5
    if isinstance(type_, Integer):
        return rng.randrange(100)
    return rng.choice(["x", "name", "y" * rng.randrange(200)])


def _python_params(upsert: Any, row: dict[str, Any]) -> list[Any]:
    return upsert.params_of(upsert.picked(row))


def _encoded(encode: Any, row: dict[str, Any]) -> list[Any]:
    """The parameters of a row, NaN (SQLite's NULL) as a marker that compares equal."""
    try:
        values = encode(row)
    except Exception as exc:  # values a column's conversion refuses: the same error both ways
        return [type(exc).__name__]
    return ["NULL" if isinstance(v, float) and math.isnan(v) else v for v in values]
