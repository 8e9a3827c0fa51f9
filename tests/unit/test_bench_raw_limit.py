"""The raw SQLite insert beside bench/ingest_otlp.py: tracehouse's own rows, fresh ids and times."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import ingest_otlp  # noqa: E402


@pytest.fixture
def raw(tmp_path: Path) -> ingest_otlp._RawRows:
    factory = ingest_otlp.BodyFactory(2)  # 20 spans per body
    bodies = [factory.build()[0] for _ in range(3)]
    return ingest_otlp._RawRows(bodies, str(tmp_path))


def _columns(raw: ingest_otlp._RawRows, table: int, rows: list[tuple], name: str) -> list:
    at = raw.names[table].index(name)
    return [row[at] for row in rows]


def test_a_transaction_holds_fresh_copies_of_the_stored_rows(raw: ingest_otlp._RawRows) -> None:
    first = raw.transaction(50)  # three bodies of 20 spans: 60
    second = raw.transaction(50)
    (obs_sql, obs), (trace_sql, trc), (session_sql, ses) = first
    assert obs_sql.startswith("INSERT INTO observations (project_id, id, trace_id")
    assert trace_sql.startswith("INSERT INTO traces ")
    assert session_sql.startswith("INSERT OR IGNORE INTO sessions ")
    assert (len(obs), len(trc)) == (60, 6)
    assert ses and all(_columns(raw, 1, trc, "session_id"))

    # Every span and trace id is new, also against the next transaction and the templates.
    span_ids = _columns(raw, 0, obs, "id") + _columns(raw, 0, second[0][1], "id")
    trace_ids = _columns(raw, 1, trc, "id") + _columns(raw, 1, second[1][1], "id")
    assert len(set(span_ids)) == 120 and len(set(trace_ids)) == 12
    template_ids = {row[raw.obs_at["id"]] for t in raw.templates for row in t[0]}
    assert not template_ids & set(span_ids)
    assert all(len(i) == 16 for i in span_ids) and all(len(i) == 32 for i in trace_ids)

    # Observations point at their own transaction's traces, parents at its spans.
    assert set(_columns(raw, 0, obs, "trace_id")) == set(_columns(raw, 1, trc, "id"))
    # (NULLs are bound as the writer binds them on SQLite: a NaN, see writes._SQLITE_NULL.)
    parents = {p for p in _columns(raw, 0, obs, "parent_observation_id") if isinstance(p, str)}
    assert parents and parents <= set(_columns(raw, 0, obs, "id"))

    # Start times rise with the rows, and on into the next transaction.
    starts = _columns(raw, 0, obs, "start_time") + _columns(raw, 0, second[0][1], "start_time")
    assert starts == sorted(starts) and len(set(starts)) == len(starts)

    # As the server encodes them: packed input (bytes) and priced generations.
    assert any(isinstance(v, bytes) for v in _columns(raw, 0, obs, "input"))
    assert any(v for v in _columns(raw, 0, obs, "total_cost"))


def test_the_rows_go_into_a_store_made_by_the_migrations(raw: ingest_otlp._RawRows) -> None:
    conn = sqlite3.connect(raw.path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_observations_project_id_trace_id_start_time_id" in indexes
    for _ in range(2):
        for sql, params in raw.transaction(40):
            conn.executemany(sql, params)
    conn.commit()
    assert conn.execute("SELECT count(*) FROM observations").fetchone() == (80,)  # 2 x 2 bodies
    assert conn.execute("SELECT count(*) FROM traces").fetchone() == (8,)
    joined = "SELECT count(*) FROM observations o JOIN traces t ON t.id = o.trace_id"
    assert conn.execute(joined).fetchone() == (80,)
    conn.close()


def test_raw_limits_inserts_the_run_s_count() -> None:
    figures = ingest_otlp.raw_limits(ingest_otlp.BodyFactory(1), 0.05, 6_000)
    assert figures["sqlite_insert_rows"] >= 6_000
    assert not figures["sqlite_insert_capped"]
    assert figures["sqlite_insert_rows_per_s"] > 0 and figures["protobuf_decode_spans_per_s"] > 0
    assert figures["row_bytes"] > 100
