"""The writer's checkpointer on a real SQLite file: it copies the write-ahead log into the
database once the log holds ``checkpoint_wal_bytes``, not after every commit.

SQLite starts a log over only when a write transaction begins after everything in it has been
copied; the commits here leave the checkpointer a moment between them, as preparing the next
batch does under load."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from tests.unit.test_writer_lock_wait import byte_locked_by_another_process
from tracehouse.config import Settings
from tracehouse.ingest.pipeline import (
    _WAL_FILE_KEPT_BYTES_PER_THRESHOLD,
    CHECKPOINT_TURN_SUFFIX,
    Writer,
    _wal_backlog_bytes,
)
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
        wal = Path(str(engine.url.database) + "-wal")
        salts, sizes = [], []
        for _ in range(commits):
            writer.call(
                lambda conn: conn.execute(
                    text("INSERT INTO blobs VALUES (:b)"), {"b": os.urandom(BLOB)}
                )
            ).result()
            salts.append(_wal_salt(wal))
            sizes.append(wal.stat().st_size)
            time.sleep(0.03)
        # The log filled about 12 times (each commit adds some 80 KiB of pages); a checkpointer
        # going by a file that never shrinks ran after every commit once the file had grown (72).
        assert 2 <= writer.checkpoints <= commits // 3, writer.checkpoints
        # Each time the log started over (a new salt in its header), SQLite wrote it over the
        # blocks the file had. The file shrinks only where it outgrew the size kept (a
        # checkpoint that fell behind on a loaded machine), and then to exactly that size; it
        # stays near one threshold long, far below the 5 MiB written.
        restarts = sum(a != b for a, b in zip(salts, salts[1:], strict=False))
        assert restarts >= 2, salts
        kept = THRESHOLD * _WAL_FILE_KEPT_BYTES_PER_THRESHOLD
        shrinks = [(a, b) for a, b in zip(sizes, sizes[1:], strict=False) if b < a]
        assert all(a > kept and b == kept for a, b in shrinks), (kept, sizes)
        assert max(sizes) < 4 * THRESHOLD, sizes
    finally:
        writer.stop()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar() == commits
    # Stopping leaves an empty log behind.
    assert wal.stat().st_size == 0
    engine.dispose()


def test_the_log_starts_over_while_two_writers_commit_back_to_back(tmp_path: Path) -> None:
    """Two writers on one file (as two ``serve`` processes: each takes the writers' lock through
    its own open file) always have a commit ready, so a checkpoint never catches up with them
    on its own and SQLite would never start the log over; the file grew by everything written.
    Each checkpoint copies the frames of the commits made meanwhile holding the writers' lock,
    so the log starts over and the file stays a small fraction of what was written (without
    that pass it was as large as everything written)."""
    engine = make_engine(Settings(data_dir=tmp_path))
    writers = [
        Writer(engine, max_queue_events=1000, max_batch_events=100, checkpoint_wal_bytes=THRESHOLD)
        for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    wal = Path(str(engine.url.database) + "-wal")
    written = 0
    largest = 0
    salt = None
    restarts = 0  # times the log's header had a new salt: it started over
    try:
        writers[0].call(lambda conn: conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")).result()
        while written * BLOB < 400 * THRESHOLD:  # 200 MiB
            # Each writer always has the next commit queued behind the one it is making.
            futures = [
                writer.call(
                    lambda conn: conn.execute(
                        text("INSERT INTO blobs VALUES (:b)"), {"b": os.urandom(BLOB)}
                    )
                )
                for writer in writers
                for _ in range(4)
            ]
            for future in futures:
                future.result()
            written += len(futures)
            previous, salt = salt, _wal_salt(wal)
            restarts += previous is not None and salt != previous
            largest = max(largest, wal.stat().st_size)
        assert sum(w.checkpoints_finished_locked for w in writers) >= 1
        assert restarts >= 3, restarts
        # Measured 3-8 MiB alone and beside busy processes, 60 MiB once beside the whole test
        # suite (a slow sync lets the file grow for longer); without the fix, all 200 MiB.
        assert largest < written * BLOB / 2, (largest, written)
    finally:
        for writer in writers:
            writer.stop()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar() == written
    engine.dispose()


def test_the_backlog_is_read_from_the_wal_index(tmp_path: Path) -> None:
    """What the log holds that no checkpoint has copied, from the ``-shm`` file: the whole log
    after commits, nothing after a checkpoint, only the new frames once the log starts over
    (while the file keeps its size); None for a file that is not a WAL index."""
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.commit()
    shm, wal = f"{db}-shm", f"{db}-wal"
    frame = 4096 + 24
    for _ in range(10):
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(20_000),))
        conn.commit()
    frames = (os.path.getsize(wal) - 32) // frame  # the file: a 32-byte header, then frames
    assert frames > 50
    assert _wal_backlog_bytes(shm) == frames * frame
    busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, logged, copied) == (0, frames, frames)
    assert _wal_backlog_bytes(shm) == 0
    conn.execute("INSERT INTO t VALUES (?)", (os.urandom(20_000),))  # starts the log over
    conn.commit()
    backlog = _wal_backlog_bytes(shm)
    assert backlog is not None and 0 < backlog < 10 * frame
    assert os.path.getsize(wal) == 32 + frames * frame
    conn.close()

    assert _wal_backlog_bytes(str(tmp_path / "missing-shm")) is None
    other = tmp_path / "other-shm"
    other.write_bytes(b"\x01" * 200)
    assert _wal_backlog_bytes(str(other)) is None


# SQLite's "dead man switch" in the WAL index: every process with the database open holds a
# shared POSIX lock on this byte; a connection that can lock it exclusively takes the index for
# abandoned and truncates it to build it anew.
_WAL_INDEX_DMS_BYTE = 128


def wal_index_held_by_others(shm: str) -> bool:
    """Whether another process than the probe's holds the WAL index (its shared DMS lock)."""
    return byte_locked_by_another_process(shm, _WAL_INDEX_DMS_BYTE)


def test_reading_the_backlog_keeps_sqlites_locks_on_the_wal_index(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, and
    SQLite keeps its WAL locks on the index: the backlog is read through SQLite's descriptor.
    With a descriptor of its own the reading dropped them all, and another process's next
    connection truncated the index under this one's mapping of it (SIGBUS under load)."""
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.commit()
    shm = f"{db}-shm"
    assert wal_index_held_by_others(shm)
    descriptors = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        assert _wal_backlog_bytes(shm) is not None
    assert sorted(os.listdir("/proc/self/fd")) == descriptors  # none opened, none closed
    assert wal_index_held_by_others(shm)
    conn.close()


def test_one_process_at_a_time_checkpoints_a_shared_file(tmp_path: Path) -> None:
    """Each serve process has a checkpointer; while one has the turn (a lock beside the
    database, as another process holds it), the others skip their rounds instead of waiting for
    the writers' lock behind its checkpoint."""
    engine = make_engine(Settings(data_dir=tmp_path))
    writer = Writer(
        engine, max_queue_events=1000, max_batch_events=100, checkpoint_wal_bytes=THRESHOLD
    )
    writer.start()
    other = os.open(str(engine.url.database) + CHECKPOINT_TURN_SUFFIX, os.O_RDWR | os.O_CREAT)
    try:
        writer.call(lambda conn: conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")).result()
        fcntl.flock(other, fcntl.LOCK_EX)  # another process is checkpointing
        for _ in range(12):  # about twice the threshold
            writer.call(
                lambda conn: conn.execute(
                    text("INSERT INTO blobs VALUES (:b)"), {"b": os.urandom(BLOB)}
                )
            ).result()
        time.sleep(1.5)  # more than a round of the checkpointer, which also polls every second
        assert writer.checkpoints == 0
        shm = str(engine.url.database) + "-shm"
        assert (_wal_backlog_bytes(shm) or 0) >= THRESHOLD
        fcntl.flock(other, fcntl.LOCK_UN)  # its turn is over: the next round is this one's
        deadline = time.monotonic() + 10
        while writer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.checkpoints >= 1
    finally:
        os.close(other)
        writer.stop()
    engine.dispose()


def _wal_salt(wal: Path) -> bytes:
    """The salts in the log's header (bytes 16-23), which SQLite draws anew each time it starts
    the log over."""
    with wal.open("rb") as f:
        return f.read(24)[16:24]
