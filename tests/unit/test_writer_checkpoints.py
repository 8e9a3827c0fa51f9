"""The writer's checkpointer on a real SQLite file: it copies the write-ahead log into the
database once the log holds ``checkpoint_wal_bytes``, not after every commit.

SQLite starts a log over only when a write transaction begins after everything in it has been
copied; the commits here leave the checkpointer a moment between them, as preparing the next
batch does under load."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import text

from tracehouse.config import Settings
from tracehouse.ingest.pipeline import Writer
from tracehouse.store.db import make_engine

THRESHOLD = 512 * 1024
BLOB = 64 * 1024


def test_checkpoints_wait_for_the_log_to_fill_again_after_it_starts_over(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path))
    writer = Writer(
        engine, max_queue_events=1000, max_batch_events=100, checkpoint_wal_bytes=THRESHOLD
    )
    writer.start()
    try:
        writer.call(lambda conn: conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")).result()
        commits = 80
        for _ in range(commits):
            writer.call(
                lambda conn: conn.execute(
                    text("INSERT INTO blobs VALUES (:b)"), {"b": os.urandom(BLOB)}
                )
            ).result()
            time.sleep(0.03)
        wal = Path(str(engine.url.database) + "-wal")
        # The log filled about 12 times (each commit adds some 80 KiB of pages); a checkpointer
        # going by a file that never shrinks ran after every commit once the file had grown (72).
        assert 2 <= writer.checkpoints <= commits // 3, writer.checkpoints
        assert wal.stat().st_size < 2 * THRESHOLD
    finally:
        writer.stop()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar() == commits
    # Stopping leaves an empty log behind.
    assert wal.stat().st_size == 0
    engine.dispose()
