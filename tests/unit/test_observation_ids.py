"""Observation ids on SQLite: a log, each process's memory of it, and an index merged in key order.

The observations table has no index on ids there (``store.observation_ids``), so the write path
itself keeps each id to one row. These tests drive it as several processes would: several
engines on one file (each with its own memory of the log), merges at any point, transactions
that roll back, ids that move to another trace, and a process that starts after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tracehouse.config import Settings
from tracehouse.domain.events import Event
from tracehouse.ingest.pipeline import Writer
from tracehouse.store import observation_ids
from tracehouse.store.db import make_engine, migrate
from tracehouse.store.observations import get_observation
from tracehouse.store.schema import observation_id_log, observations
from tracehouse.store.schema import observation_ids as ids_table
from tracehouse.store.traces import delete_traces
from tracehouse.store.writes import apply_events, commit_prepared, prepare_events

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
P = "p1"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    migrate_engine = make_engine(Settings(data_dir=tmp_path))
    migrate(migrate_engine)
    migrate_engine.dispose()
    return tmp_path


@pytest.fixture
def engines(folder: Path) -> Iterator[list[Engine]]:
    """Two engines on one database: two processes, as far as the id log is concerned."""
    made = [make_engine(Settings(data_dir=folder)) for _ in range(2)]
    yield made
    for eng in made:
        eng.dispose()


def span(
    obs_id: str,
    trace_id: str | None = "t1",
    *,
    at: float = 0.0,
    create: bool = True,
    **fields: object,
) -> Event:
    """A span's create (with its trace, a start time and a name unless given), or with
    ``trace_id=None`` an event with only ``fields``."""
    body: dict[str, object] = {}
    if trace_id is not None:
        body = {"type": "SPAN", "name": f"span {obs_id}", "trace_id": trace_id, "start_time": T0}
    body.update(fields)
    return Event(
        "observation", obs_id, f"ev-{obs_id}-{at}", T0 + timedelta(seconds=at), create, body
    )


def write(engine: Engine, *events: Event, project: str = P) -> None:
    with engine.begin() as conn:
        apply_events(conn, [(project, e) for e in events])


def rows(engine: Engine, project: str = P) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        stmt = select(observations.c.id, observations.c.trace_id, observations.c.name).where(
            observations.c.project_id == project
        )
        return sorted(tuple(r) for r in conn.execute(stmt))


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def read(engine: Engine, obs_id: str, project: str = P) -> dict[str, object] | None:
    with engine.connect() as conn:
        return get_observation(conn, project, obs_id)


def test_an_update_written_by_another_process_merges_into_the_same_row(engines):
    a, b = engines
    write(a, span("o1", name="first"))
    read(b, "o1")  # b has read the log once: what a writes next is new to it
    write(a, span("o2"))
    write(b, span("o2", None, at=1, name="renamed"), span("o1", None, at=1, output="x"))
    assert rows(a) == [("o1", "t1", "first"), ("o2", "t1", "renamed")]
    assert read(a, "o1")["output"] == "x"


def test_a_merge_moves_the_ids_into_the_index_and_nothing_is_lost(engines):
    a, b = engines
    write(a, *(span(f"o{i:03d}", f"t{i % 7}") for i in range(100)))
    assert count(a, observation_id_log) == 100
    assert observation_ids.merge(a, at=1, chunk=16) == 100
    assert count(a, observation_id_log) == 0
    assert count(a, ids_table) == 100
    assert observation_ids.pending(a) == 0  # memory dropped what was merged
    write(b, span("o005", None, at=1, name="after the merge"), span("o100", "t1"))
    assert len(rows(a)) == 101
    assert read(a, "o005")["name"] == "after the merge"
    assert read(b, "o005")["trace_id"] == "t5"


def test_nothing_merges_below_the_threshold(engines):
    (a, _) = engines
    write(a, span("o1"), span("o2"))
    assert observation_ids.merge(a, at=3) == 0
    assert count(a, observation_id_log) == 2 and count(a, ids_table) == 0


def test_a_process_started_after_a_crash_reads_the_log(folder):
    first = make_engine(Settings(data_dir=folder))
    write(first, span("o1"), span("o2"))
    observation_ids.merge(first, at=1)
    write(first, span("o3"))
    first.dispose()  # the process is gone; o3 is only in the log
    second = make_engine(Settings(data_dir=folder))
    try:
        write(second, span("o3", None, at=1, name="updated"), span("o1", None, at=1, level="ERROR"))
        assert [r[0] for r in rows(second)] == ["o1", "o2", "o3"]
        assert read(second, "o3")["name"] == "updated"
        assert read(second, "o1")["level"] == "ERROR"
    finally:
        second.dispose()


def test_a_rolled_back_write_leaves_no_trace_in_any_memory(engines):
    a, b = engines
    write(a, span("o0"))
    # o1 is written, then rolled back: its log number is given again.
    with a.connect() as conn, conn.begin() as txn:
        apply_events(conn, [(P, span("o1"))])
        txn.rollback()
    write(b, span("o2"))  # takes the number o1 had
    write(a, span("o2", None, at=1, name="found"))
    assert rows(a) == [("o0", "t1", "span o0"), ("o2", "t1", "found")]


def test_two_batches_of_one_transaction_see_each_other(engines):
    (a, _) = engines
    with a.begin() as conn:
        commit_prepared(conn, prepare_events([(P, span("o1"))], None, a.dialect))
        commit_prepared(
            conn, prepare_events([(P, span("o1", None, at=1, name="x"))], None, a.dialect)
        )
    assert rows(a) == [("o1", "t1", "x")]


def test_an_observation_moved_to_another_trace_is_found_there(engines):
    """An update that comes before its create gets a made-up trace; the create moves it."""
    a, b = engines
    write(a, span("o1", None, create=False, output="early"))
    ((_, made_up, _),) = rows(a)
    observation_ids.merge(a, at=1)  # the made-up trace is now in the index
    assert read(b, "o1")["trace_id"] == made_up
    write(b, span("o1", "t2", at=1, name="moved"))
    assert rows(a) == [("o1", "t2", "moved")]
    for eng in (a, b):
        assert read(eng, "o1")["name"] == "moved"
    observation_ids.merge(b, at=1)
    assert read(a, "o1")["trace_id"] == "t2"
    write(a, span("o1", None, at=2, level="WARNING"))
    assert rows(a) == [("o1", "t2", "moved")] and read(b, "o1")["level"] == "WARNING"


def test_an_id_of_a_deleted_trace_is_written_anew(engines):
    a, b = engines
    write(a, span("o1", "t1", name="old"))
    observation_ids.merge(a, at=1)
    write(a, span("o2", "t1"))
    with a.begin() as conn:
        delete_traces(conn, P, ["t1"])
    assert read(b, "o1") is None and read(b, "o2") is None
    write(b, span("o1", "t9", at=1, name="new"), span("o2", None, at=1))
    assert [(r[0], r[2]) for r in rows(a)] == [("o1", "new"), ("o2", None)]  # o2: written anew
    assert read(a, "o1")["trace_id"] == "t9"


def test_projects_keep_their_own_ids(engines):
    a, b = engines
    write(a, span("o1", name="mine"), project="p1")
    write(b, span("o1", name="theirs"), project="p2")
    observation_ids.merge(a, at=1)
    assert read(a, "o1", "p1")["name"] == "mine"
    assert read(b, "o1", "p2")["name"] == "theirs"
    assert read(a, "o1", "p3") is None


def test_the_writer_merges_once_enough_ids_gathered(folder):
    engine = make_engine(Settings(data_dir=folder))
    writer = Writer(engine, max_queue_events=10_000, max_batch_events=1_000, id_merge_at=50)
    writer.start()
    try:
        for i in range(12):
            writer.submit(P, [span(f"o{i}-{j}", f"t{i}") for j in range(10)]).result(10)
        deadline = time.monotonic() + 10
        while writer.id_merges == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.id_merges >= 1
        assert count(engine, ids_table) >= 50
        assert count(engine, observation_id_log) < 120
        writer.submit(P, [span("o3-3", None, at=1, name="late")]).result(10)
    finally:
        writer.stop()
    assert len(rows(engine)) == 120
    assert read(engine, "o3-3")["name"] == "late"
    engine.dispose()


def test_a_committed_transaction_adds_its_own_ids_without_reading_them_back(engines):
    a, b = engines
    write(b, span("o0"))
    with a.connect() as conn:
        with conn.begin():
            apply_events(conn, [(P, span("o1")), (P, span("o2"))])
        observation_ids.committed(conn)
    tail = observation_ids.tail_of(a)
    assert tail.last_seq == 3
    assert {ref: entry[1] for ref, entry in tail.entries.items()} == {
        (P, "o0"): 1,
        (P, "o1"): 2,
        (P, "o2"): 3,
    }
    write(b, span("o3"))
    write(a, span("o3", None, at=1, name="seen"), span("o2", None, at=1, name="seen too"))
    assert [r[2] for r in rows(a)] == ["span o0", "span o1", "seen too", "seen"]


def test_hex_ids_are_kept_as_bytes_and_others_as_they_are(engines):
    a, _ = engines
    span_id, trace_id = "0123456789abcdef", "0123456789abcdef0123456789abcdef"
    write(a, span(span_id, trace_id), span("Span-Upper-1", "0123456789ABCDEF0123456789ABCDEF"))
    observation_ids.merge(a, at=1)
    with a.connect() as conn:
        stored = dict(conn.exec_driver_sql("SELECT id, trace_id FROM observation_ids").all())
    assert stored == {
        bytes.fromhex(span_id): bytes.fromhex(trace_id),
        "Span-Upper-1": "0123456789ABCDEF0123456789ABCDEF",
    }
    assert read(a, span_id)["trace_id"] == trace_id
    assert read(a, "Span-Upper-1")["trace_id"] == "0123456789ABCDEF0123456789ABCDEF"
    write(a, span(span_id, None, at=1, name="again"))
    assert len(rows(a)) == 2 and read(a, span_id)["name"] == "again"
