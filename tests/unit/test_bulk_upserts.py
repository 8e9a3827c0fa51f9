"""Batches large enough for the bulk paths of the write step, on SQLite and PostgreSQL.

On PostgreSQL a batch of at least ``_COPY_MIN_ROWS`` rows per table is upserted by COPY into a
staging table and one INSERT ... SELECT ... ON CONFLICT, and stored rows are looked up one
primary-key probe per id; smaller ones use the one-row statement. Both must store exactly what
the one-row path stores: new rows as prepared, existing rows merged and updated, sessions kept
as first written, and several batches in one transaction. A database user who may not create
temporary tables gets the one-row statement for every batch, and nothing fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tests.conftest import PG_ADMIN_URL, _pg_database
from tracehouse.config import Settings
from tracehouse.domain.events import Event
from tracehouse.ingest.pipeline import Writer
from tracehouse.pricing.builtin import builtin_models
from tracehouse.pricing.registry import ModelRegistry
from tracehouse.store.db import make_engine, migrate
from tracehouse.store.schema import observations, sessions, traces
from tracehouse.store.writes import (
    _COPY_MIN_ROWS,
    _insert_new_observations,
    _upsert,
    apply_events,
    commit_prepared,
    prepare_events,
)

T0 = datetime(2026, 5, 1, 9, 30, 0, 250000, tzinfo=UTC)
N = 3 * _COPY_MIN_ROWS  # observations per batch: well above the bulk threshold
TRACES = N // 2  # two observations per trace: traces and sessions take the bulk path too


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)
        eng = make_engine(settings)
        migrate(eng)
        yield eng
        eng.dispose()
        return
    gen = _pg_database()
    url = next(gen)
    try:
        eng = make_engine(Settings(data_dir=tmp_path, database_url=url))
        migrate(eng)
        yield eng
        eng.dispose()
    finally:
        gen.close()


def generation(i: int, *, seconds: float = 0.0, create: bool = True, **fields: object) -> Event:
    base: dict[str, object] = {
        "type": "GENERATION",
        "name": f"chat {i}",
        "trace_id": f"{i // 2:032x}",
        "start_time": T0 + timedelta(milliseconds=i),
        "end_time": T0 + timedelta(milliseconds=i, seconds=2),
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": f"question {i}\ttab\nline \\ back"}],
        "usage_details": {"input": 100 + i, "output": 10},
        "metadata": {"step": i, "tags": ["a", "b"]},
        "environment": "production",
        "version": "v1\ttab \\ back\nline \\N",  # COPY's text format escapes these
    }
    if not create:
        base = {}
    base.update(fields)
    return Event(
        "observation",
        f"obs-{i:04d}",
        f"ev-{i}-{seconds}-{create}",
        T0 + timedelta(seconds=seconds),
        create,
        base,
    )


def trace(i: int, **fields: object) -> Event:
    body: dict[str, object] = {
        "timestamp": T0,
        "name": f"request {i}",
        "session_id": f"session-{i}",
        "user_id": f"user-{i % 3}",
        "tags": ["bulk"],
    }
    body.update(fields)
    return Event("trace", f"{i:032x}", f"tr-{i}-{sorted(fields)}", T0, True, body)


def stored(engine: Engine, project: str = "p1") -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(observations).where(observations.c.project_id == project))
        return {row.id: dict(row._mapping) for row in rows}


def test_a_large_batch_of_new_rows_is_stored_as_prepared(engine: Engine) -> None:
    models = ModelRegistry(builtin_models(), lambda p: ())
    events = [("p1", generation(i)) for i in range(N)]
    events += [("p1", trace(t)) for t in range(TRACES)]
    with engine.begin() as conn:
        apply_events(conn, events, models)

    rows = stored(engine)
    assert len(rows) == N
    row = rows["obs-0007"]
    assert row["name"] == "chat 7"
    assert row["trace_id"] == f"{3:032x}"
    assert row["start_time"] == T0 + timedelta(milliseconds=7)
    assert row["input"] == [{"role": "user", "content": "question 7\ttab\nline \\ back"}]
    assert row["metadata"] == {"step": 7, "tags": ["a", "b"]}
    assert row["version"] == "v1\ttab \\ back\nline \\N"
    assert row["usage_details"] == {"input": 107, "output": 10, "total": 117}
    assert row["internal_model_id"] is not None and row["total_cost"] > 0
    assert row["created_at"] == row["updated_at"]
    with engine.connect() as conn:
        names = dict(conn.execute(select(traces.c.id, traces.c.name)).all())
        assert len(names) == TRACES and names[f"{3:032x}"] == "request 3"
        flags = select(traces.c.public, traces.c.bookmarked, traces.c.tags, traces.c.timestamp)
        one = conn.execute(flags.where(traces.c.id == f"{3:032x}")).one()
        assert tuple(one) == (False, False, ["bulk"], T0)
        assert conn.execute(select(func.count()).select_from(sessions)).scalar() == TRACES


def test_a_large_batch_merges_into_stored_rows_and_keeps_sessions(engine: Engine) -> None:
    models = ModelRegistry(builtin_models(), lambda p: ())
    with engine.begin() as conn:
        apply_events(conn, [("p1", generation(i)) for i in range(N)], models)
        apply_events(conn, [("p1", trace(t)) for t in range(TRACES)], models)
    with engine.connect() as conn:
        first_sessions = dict(conn.execute(select(sessions.c.id, sessions.c.created_at)).all())
    before = stored(engine)

    # Half the batch updates stored observations, half creates new ones; the traces are
    # renamed, their sessions already exist.
    later = [
        ("p1", generation(i, seconds=5, create=False, output={"answer": i}, level="WARNING"))
        for i in range(N // 2)
    ]
    later += [("p1", generation(i)) for i in range(N, N + N // 2)]
    later += [("p1", trace(t, name=f"renamed {t}")) for t in range(TRACES)]
    with engine.begin() as conn:
        apply_events(conn, later, models)

    rows = stored(engine)
    assert len(rows) == N + N // 2
    updated = rows["obs-0003"]
    assert updated["output"] == {"answer": 3}
    assert updated["level"] == "WARNING"
    assert updated["name"] == "chat 3"  # kept from the create
    assert updated["input"] == before["obs-0003"]["input"]
    assert updated["created_at"] == before["obs-0003"]["created_at"]
    assert updated["updated_at"] > before["obs-0003"]["updated_at"]
    untouched = rows[f"obs-{N - 1:04d}"]
    assert untouched == before[f"obs-{N - 1:04d}"]
    with engine.connect() as conn:
        names = dict(conn.execute(select(traces.c.id, traces.c.name)).all())
        assert names[f"{5:032x}"] == "renamed 5"
        again = dict(conn.execute(select(sessions.c.id, sessions.c.created_at)).all())
    assert again == first_sessions  # sessions are kept as first written


def test_a_stored_row_late_in_a_large_batch_merges_and_the_new_rows_are_stored_once(
    engine: Engine,
) -> None:
    # On SQLite a batch is first inserted as new rows, several statements for a large batch;
    # a stored id in its last statement fails that one after the earlier ones were written.
    # Those must be taken back, so that every row of the batch is merged and stored once.
    models = ModelRegistry(builtin_models(), lambda p: ())
    big = 300  # statements of 256, 32, 8 and 4 rows
    with engine.begin() as conn:
        apply_events(conn, [("p1", generation(big - 1))], models)
    before = stored(engine)[f"obs-{big - 1:04d}"]

    batch = [("p1", generation(i)) for i in range(big - 1)]
    batch.append(("p1", generation(big - 1, seconds=5, create=False, level="ERROR")))
    with engine.begin() as conn:
        apply_events(conn, batch, models)

    rows = stored(engine)
    assert len(rows) == big
    merged = rows[f"obs-{big - 1:04d}"]
    assert merged["level"] == "ERROR"
    assert merged["name"] == before["name"] and merged["input"] == before["input"]
    assert merged["created_at"] == before["created_at"]
    assert merged["updated_at"] > before["updated_at"]
    first = rows["obs-0000"]
    assert first["name"] == "chat 0" and first["created_at"] == first["updated_at"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(traces)).scalar() == big // 2


def test_the_insert_of_new_rows_takes_back_its_earlier_statements(tmp_path: Path) -> None:
    # The fallback above would merge the batch's own rows again (the same events: no change),
    # so the rows are checked right after the failed insert: only the stored one is left.
    engine = make_engine(Settings(data_dir=tmp_path))
    migrate(engine)
    models = ModelRegistry(builtin_models(), lambda p: ())
    with engine.begin() as conn:
        apply_events(conn, [("p1", generation(299))], models)
    batch = [("p1", generation(i)) for i in range(300)]
    prepared = prepare_events(batch, models, engine.dialect)
    with engine.begin() as conn:
        assert _insert_new_observations(conn, prepared) is False
        ids = conn.execute(select(observations.c.id)).scalars().all()
        assert ids == ["obs-0299"]
        commit_prepared(conn, prepared, models)  # the same transaction goes on
    assert len(stored(engine)) == 300
    engine.dispose()


def test_a_batch_sent_again_whole_changes_nothing_and_adds_no_rows(engine: Engine) -> None:
    models = ModelRegistry(builtin_models(), lambda p: ())
    events = [("p1", generation(i)) for i in range(N)]
    with engine.begin() as conn:
        apply_events(conn, events, models)
    before = stored(engine)
    with engine.begin() as conn:  # a client's retry of a request whose reply it never got
        apply_events(conn, events, models)
    after = stored(engine)
    assert len(after) == N
    for key, row in after.items():
        assert {k: v for k, v in row.items() if k != "updated_at"} == {
            k: v for k, v in before[key].items() if k != "updated_at"
        }


def test_several_large_batches_in_one_transaction(engine: Engine) -> None:
    models = ModelRegistry(builtin_models(), lambda p: ())
    first = prepare_events([("p1", generation(i)) for i in range(N)], models, engine.dialect)
    second = prepare_events(
        [("p1", generation(i)) for i in range(N, 2 * N)]
        + [("p1", generation(i, seconds=5, create=False, name="again")) for i in range(N)],
        models,
        engine.dialect,
    )
    other = prepare_events([("p2", generation(i)) for i in range(N)], models, engine.dialect)
    with engine.begin() as conn:
        commit_prepared(conn, first, models)
        commit_prepared(conn, second, models)
        commit_prepared(conn, other, models)

    rows = stored(engine)
    assert len(rows) == 2 * N
    assert {rows[f"obs-{i:04d}"]["name"] for i in range(N)} == {"again"}
    assert rows[f"obs-{N + 1:04d}"]["name"] == f"chat {N + 1}"
    assert len(stored(engine, "p2")) == N  # the same ids in another project: rows of their own
    assert stored(engine, "p2")["obs-0001"]["name"] == "chat 1"


def test_a_failed_bulk_transaction_leaves_nothing_behind(engine: Engine) -> None:
    models = ModelRegistry(builtin_models(), lambda p: ())
    with pytest.raises(RuntimeError), engine.begin() as conn:
        apply_events(conn, [("p1", generation(i)) for i in range(N)], models)
        raise RuntimeError("abort")
    assert stored(engine) == {}
    with engine.begin() as conn:  # the connection (and its staging table) is usable again
        apply_events(conn, [("p1", generation(i)) for i in range(N)], models)
    assert len(stored(engine)) == N


@pytest.mark.postgres
def test_a_user_without_temporary_tables_gets_every_row_stored(tmp_path: Path) -> None:
    """A database user whose TEMPORARY privilege was revoked: the first large batch learns it
    inside a savepoint and, like every later one, goes row by row; nothing fails."""
    gen = _pg_database()
    url = next(gen)
    role = f"th_notemp_{uuid.uuid4().hex[:8]}"
    admin = make_engine(Settings(data_dir=tmp_path, database_url=url))
    user_engine: Engine | None = None
    try:
        migrate(admin)
        database = admin.url.database
        with admin.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(
                text(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
                )
            )
        user_url = admin.url.set(username=role).render_as_string(hide_password=False)
        user_engine = make_engine(Settings(data_dir=tmp_path, database_url=user_url))
        models = ModelRegistry(builtin_models(), lambda p: ())
        writer = Writer(user_engine, max_queue_events=10_000, max_batch_events=5_000, models=models)
        writer.start()
        try:
            first = writer.submit("p1", [generation(i) for i in range(N)])
            first.result(timeout=60)
            later = writer.submit("p1", [generation(i) for i in range(N, 2 * N)])
            later.result(timeout=60)
        finally:
            writer.stop()
        rows = stored(user_engine)
        assert len(rows) == 2 * N
        assert rows[f"obs-{N + 3:04d}"]["name"] == f"chat {N + 3}"
    finally:
        if user_engine is not None:
            user_engine.dispose()
        admin.dispose()
        gen.close()
        with create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))


def test_upsert_parameters_of_whole_and_partial_rows() -> None:
    """A row with every column is read in one go; a row missing columns binds them as NULL
    (session rows name only a few), and either way the values are converted alike."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from tracehouse.store.writes import _upsert_sql_for

    upsert = _upsert_sql_for(sqlite_dialect.dialect(), sessions, False)
    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    whole = dict.fromkeys(upsert.names)
    whole.update(project_id="p", id="s", created_at=now, environment="default")
    partial = {"project_id": "p", "id": "s", "created_at": now, "environment": "default"}
    params = upsert.params(whole)
    assert params == upsert.params(partial)
    assert params[upsert.names.index("created_at")] == "2026-01-02 03:04:05.000006"
    # SQLite binds a NULL as its own NaN (see _SQLITE_NULL); PostgreSQL as None.
    assert upsert.null is not None
    assert all(
        params[i] is upsert.null for i, name in enumerate(upsert.names) if name not in partial
    )


def test_values_not_sent_are_stored_as_sql_null_of_every_column_type(engine: Engine) -> None:
    """SQLite binds NULLs as NaN (``_SQLITE_NULL``): what is stored must be SQL NULL in text,
    real, integer and JSON columns alike, read back as None, found by ``IS NULL`` and never
    by a comparison, on the bulk path and the one-row path; a NOT NULL column still refuses
    the row, and the transaction keeps nothing of it."""
    nullable = ("status_message", "total_cost", "prompt_version", "output", "completion_start_time")
    events = [("p1", generation(i)) for i in range(N)] + [("p1", generation(N))]
    with engine.begin() as conn:
        apply_events(conn, events[:N])  # bulk statements
        apply_events(conn, events[N:])  # one row
        apply_events(conn, [("p1", trace(0, session_id=None, user_id=None))])
    rows = stored(engine)
    assert len(rows) == N + 1
    assert all(rows[k][c] is None for k in ("obs-0003", f"obs-{N:04d}") for c in nullable)
    with engine.connect() as conn:
        for column in nullable:
            col = observations.c[column]
            assert (
                conn.execute(
                    select(func.count()).where(col.is_(None), observations.c.project_id == "p1")
                ).scalar()
                == N + 1
            ), column
        types = conn.execute(
            text(
                "SELECT DISTINCT "
                + ", ".join(f"{c} IS NULL" for c in nullable)
                + " FROM observations"
            )
        ).all()
        assert types == [(True,) * len(nullable)] or types == [(1,) * len(nullable)]
        names = select(traces.c.user_id, traces.c.session_id).where(traces.c.id == f"{0:032x}")
        assert conn.execute(names).one() == (None, None)
        # NaN never leaks as a value: no row compares equal or unequal to anything.
        assert (
            conn.execute(select(func.count()).where(observations.c.total_cost != 0)).scalar() == 0
        )
    prepared = prepare_events([("p1", generation(N + 1))], None, engine.dialect)
    (row,) = prepared.rows["observation"].values()
    row["environment"] = None  # NOT NULL
    with pytest.raises(IntegrityError, match="(?i)not.null|null value"), engine.begin() as conn:
        _upsert(conn, observations, [row])
    assert f"obs-{N + 1:04d}" not in stored(engine)
