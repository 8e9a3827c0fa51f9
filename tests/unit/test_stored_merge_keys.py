"""Stored merge keys: the single-key form of rows one event set, and merging on top of it.

Through a real SQLite store: whatever form a row's keys were stored in, merging later events
into it gives what folding every event in one go gives.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine

from tracehouse.domain.events import Event
from tracehouse.domain.merge import Record, encode_keys
from tracehouse.store.db import _sqlite_on_connect
from tracehouse.store.schema import metadata, observations, traces
from tracehouse.store.writes import _single_key, apply_events

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SPAN_FIELDS = {
    "type": "GENERATION",
    "name": "chat",
    "level": "DEFAULT",
    "environment": "production",
    "trace_id": "t" * 32,
    "start_time": T0,
    "end_time": T0 + timedelta(seconds=2),
    "model": "gpt-4o",
    "input": [{"role": "user", "content": "hi"}],
    "output": {"role": "assistant", "content": "hello"},
    "usage_details": {"input": 10, "output": 3},
    "metadata": {"resourceAttributes": {"service.name": "app"}, "scope": {"name": "x"}},
}


@pytest.fixture
def engine(tmp_path) -> Engine:
    eng = create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    from sqlalchemy import event

    event.listen(eng, "connect", _sqlite_on_connect)
    metadata.create_all(eng)
    yield eng
    eng.dispose()


def span(fields=None, seconds=0.0, *, create=True, entity="s1", weak=False):
    return Event(
        "observation",
        entity,
        f"e-{entity}-{seconds}-{create}",
        T0 + timedelta(seconds=seconds),
        create,
        dict(SPAN_FIELDS if fields is None else fields),
        weak,
    )


def stored_keys(engine, table, entity="s1"):
    with engine.connect() as conn:
        return conn.execute(
            select(table.c.merge_keys).where(table.c.project_id == "p", table.c.id == entity)
        ).scalar_one()


def row(engine, table, entity="s1"):
    with engine.connect() as conn:
        found = conn.execute(
            select(table).where(table.c.project_id == "p", table.c.id == entity)
        ).mappings()
        # The values; how merge keys are stored (which event a key of equal effect names) may
        # differ with the order, as in tests/unit/test_merge.py.
        skip = ("created_at", "updated_at", "merge_keys")
        return {k: v for k, v in next(iter(found)).items() if k not in skip}


def test_a_span_set_by_one_event_stores_only_that_its_key_is_its_start(engine):
    with engine.begin() as conn:
        apply_events(conn, [("p", span())])
    assert stored_keys(engine, observations) == "="
    with engine.connect() as conn:  # a three-byte JSON string, not a packed object
        raw = conn.execute(text("SELECT merge_keys FROM observations")).scalar_one()
    assert raw == '"="'
    # The implied trace (weak, so its key is not of strength 1): the key itself.
    assert stored_keys(engine, traces, "t" * 32) == f"0|{T0.isoformat()[:26]}|0"


def test_a_key_other_than_the_start_is_stored_as_text():
    keys = {
        "name": (1, "2026-03-01T12:00:05.000000", 0),
        "start_time": (1, "2026-03-01T12:00:05.000000", 0),
    }
    values = {"name": "x", "start_time": T0}
    assert _single_key("observation", keys, values) == "1|2026-03-01T12:00:05.000000|0"


def test_rows_the_single_key_cannot_describe_keep_the_full_form():
    key = (1, "2026-03-01T12:00:00.123456", 0)
    values = {"name": "x", "start_time": T0, "metadata": {"a": 1}}
    full = {"name": key, "start_time": key, "metadata": key, "metadata.a": key}
    assert _single_key("observation", full, values) == "="
    # two keys
    assert (
        _single_key("observation", {**full, "name": (1, "2026-03-01T12:00:09.000000", 0)}, values)
        is None
    )
    # a field held without a key (a default filled in), or a key of a field not held
    assert (
        _single_key("observation", {k: v for k, v in full.items() if k != "name"}, values) is None
    )
    assert _single_key("observation", {**full, "model": key}, values) is None  # model: null
    assert _single_key("observation", {**full, "metadata.b": key}, values) is None
    # empty provided usage is stored as NULL: its key could not be told from the row
    assert (
        _single_key("observation", {**full, "usage_details": key}, {**values, "usage_details": {}})
        is None
    )
    # a start time not in UTC: its key text is not the stored column's
    local = T0.astimezone(timezone(timedelta(hours=2)))
    assert _single_key("observation", full, {**values, "start_time": local}) == f"1|{key[1]}|0"
    # kinds without the single-key form
    assert _single_key("score", full, values) is None


def _history():
    return [
        span(seconds=0),
        span(
            {"output": "late", "name": "renamed", "model": None, "metadata": {"b": 2}},
            5,
            create=False,
        ),
        span(
            {"name": "stale", "level": "WARNING", "metadata": {"scope": {"v": 2}}}, -3, create=False
        ),
        span({"name": "older", "start_time": T0 - timedelta(seconds=9)}, -9, create=True),
    ]


def _expected(engine_factory):
    eng = engine_factory()
    with eng.begin() as conn:
        apply_events(conn, [("p", e) for e in _history()])
    return row(eng, observations)


def test_any_arrival_order_through_storage_gives_the_same_row(tmp_path):
    made = []

    def fresh():
        eng = create_engine(f"sqlite:///{tmp_path / f'o{len(made)}.db'}")
        metadata.create_all(eng)
        made.append(eng)
        return eng

    expected = _expected(fresh)
    assert expected["name"] == "renamed" and expected["model"] is None  # an explicit null clears
    assert expected["level"] == "DEFAULT"  # the update at -3 s is older than the span
    assert expected["metadata"]["scope"] == {"v": 2, "name": "x"}  # objects merge key by key
    assert expected["start_time"] == T0 - timedelta(seconds=9)  # FIRST: the earliest create
    single_key_rows = 0
    for order in itertools.permutations(_history()):
        eng = fresh()
        for event in order:  # one request each: every step merges on top of the stored row
            with eng.begin() as conn:
                apply_events(conn, [("p", event)])
            single_key_rows += isinstance(stored_keys(eng, observations), str)
        assert row(eng, observations) == expected, [e.fields for e in order]
        eng.dispose()
    assert single_key_rows >= 6  # the 6 orders that start with the whole span, at least
    for eng in made:
        eng.dispose()


def test_an_older_update_after_a_single_key_row_loses_where_it_should(engine):
    with engine.begin() as conn:
        apply_events(conn, [("p", span())])
    assert stored_keys(engine, observations) == "="
    with engine.begin() as conn:  # sent before the span (by its time): the span's values win
        apply_events(
            conn, [("p", span({"name": "stale", "metadata": {"scope": "old"}}, -1, create=False))]
        )
    stored = row(engine, observations)
    assert stored["name"] == "chat"
    assert stored["metadata"]["scope"] == {"name": "x"}
    assert stored_keys(engine, observations) == "="  # it changed nothing
    with engine.begin() as conn:  # a newer update: two keys now, so the full form
        apply_events(conn, [("p", span({"output": "later"}, 1, create=False))])
    assert row(engine, observations)["output"] == "later"
    keys = stored_keys(engine, observations)
    assert isinstance(keys, dict) and len(keys) == 2


def test_full_form_rows_still_merge(engine):
    """Rows written before the single-key form keep working: their keys are read as stored."""
    event = span()
    record = Record("observation")
    record.apply(event)
    with engine.begin() as conn:
        apply_events(conn, [("p", event)])
        conn.execute(observations.update().values(merge_keys=encode_keys(record.keys)))
    with engine.begin() as conn:
        apply_events(conn, [("p", span({"name": "newer"}, 1, create=False))])
    assert row(engine, observations)["name"] == "newer"
