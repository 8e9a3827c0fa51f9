"""The writer's connection on a real SQLite file: one for all its transactions (so SQLite keeps
its page cache between them; the effect is measured in ``bench/README.md``), and a new one after
the old one was invalidated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tracehouse.config import Settings
from tracehouse.ingest.pipeline import Writer
from tracehouse.store.db import make_engine


def _dbapi(conn: Connection) -> Any:
    return conn.connection.dbapi_connection


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    engine = make_engine(Settings(data_dir=tmp_path))
    w = Writer(engine, max_queue_events=1000, max_batch_events=100)
    w.start()
    w.call(lambda conn: conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")).result()
    yield w
    w.stop()
    engine.dispose()


def test_every_transaction_runs_on_the_writers_own_connection(writer: Writer) -> None:
    engine = writer._engine
    seen = []
    for value in range(5):
        seen.append(
            writer.call(
                lambda conn, value=value: (
                    conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value}),
                    _dbapi(conn),
                )[1]
            ).result()
        )
        # Readers use several connections of the pool at once; it hands out the one idle
        # longest next.
        with engine.connect() as one, engine.connect() as two:
            for other in (one, two):
                assert other.exec_driver_sql("SELECT count(*) FROM t").scalar() == value + 1
    assert all(s is seen[0] for s in seen)


def test_an_invalidated_connection_is_replaced(writer: Writer) -> None:
    first = writer.call(_dbapi).result()

    def fail(conn: Connection) -> None:
        conn.invalidate()
        raise RuntimeError("disk I/O error")

    with pytest.raises(RuntimeError, match="disk I/O error"):
        writer.call(fail).result()
    second = writer.call(
        lambda conn: (conn.execute(text("INSERT INTO t VALUES (7)")), _dbapi(conn))[1]
    ).result()
    assert second is not first
    assert writer.call(lambda conn: conn.exec_driver_sql("SELECT v FROM t").scalar()).result() == 7
