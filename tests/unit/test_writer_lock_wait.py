"""The writer while another process holds the writers' lock of a shared SQLite file.

Requests that queue up while it waits join the transaction it is about to make (up to a batch),
instead of waiting for the next one; and the checkpointer's early sync works through a
descriptor the process already has, so no POSIX lock on the database file is ever dropped.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tests.unit.test_bulk_upserts import generation
from tracehouse.config import Settings
from tracehouse.ingest.pipeline import WRITER_LOCK_SUFFIX, Writer, _sync_open_files
from tracehouse.store.db import make_engine, migrate
from tracehouse.store.schema import observations

# Enough events that preparing them takes a while (about a second here), so the requests sent
# just after them arrive while the writer is still at it, even on a loaded machine (with 3,000
# events, 60 ms, the small requests once came too late beside the whole test suite).
BIG = 20_000


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(Settings(data_dir=tmp_path))
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def other_process_lock(engine: Engine) -> Iterator[int]:
    """The writers' lock file opened as another process opens it (its own open file)."""
    fd = os.open(str(engine.url.database) + WRITER_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(observations)).scalar_one())


def _requests_while_locked(
    engine: Engine, lock_fd: int, max_batch_events: int, left_queued: int
) -> int:
    """A large request, three small ones sent while the writer prepares it, all while another
    process holds the lock; once the writer has taken all but ``left_queued`` of the small
    ones, the lock is released. The writer's transactions."""
    writer = Writer(engine, max_queue_events=100_000, max_batch_events=max_batch_events)
    writer.start()
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # another process is committing
        first = writer.submit("p1", [generation(i) for i in range(BIG)])
        time.sleep(0.05)  # the writer has taken the large request and prepares it
        later = [writer.submit("p1", [generation(i)]) for i in range(BIG, BIG + 3)]
        time.sleep(0.5)
        assert writer.commits == 0  # nothing committed while the lock is taken
        # Taken from the queue means added to the waiting transaction. (The writer before this
        # change never took them while waiting: the deadline ends the wait.)
        deadline = time.monotonic() + 20
        while writer._queue.qsize() > left_queued and time.monotonic() < deadline:
            time.sleep(0.05)
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        for future in [first, *later]:
            future.result(timeout=30)
        return writer.commits
    finally:
        writer.stop()


def test_requests_queued_while_another_process_commits_join_the_waiting_transaction(
    engine: Engine, other_process_lock: int
) -> None:
    # Before, the writer waited for the lock with what it had prepared, and the three small
    # requests made a second transaction after it.
    commits = _requests_while_locked(engine, other_process_lock, 50_000, left_queued=0)
    assert commits == 1
    assert _stored(engine) == BIG + 3


def test_what_joins_a_waiting_transaction_stays_within_a_batch(
    engine: Engine, other_process_lock: int
) -> None:
    # Room for one more event: the first small request joins, the other two come after.
    commits = _requests_while_locked(engine, other_process_lock, BIG + 1, left_queued=2)
    assert commits == 2
    assert _stored(engine) == BIG + 3


def test_the_early_sync_keeps_the_posix_locks_of_the_process(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, which
    is how SQLite locks a database; so the sync goes through a descriptor already open."""
    path = tmp_path / "db"
    path.write_bytes(b"x" * 4096)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 100)  # as SQLite locks a byte
        before = _open_descriptors()
        _sync_open_files(str(path), str(tmp_path / "not-open"))  # no such file: nothing to do
        assert _open_descriptors() == before
        assert byte_locked_by_another_process(str(path), 100)  # still this process's lock
    finally:
        os.close(fd)


_LOCK_PROBE = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "try:\n"
    "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))\n"
    "except OSError:\n"
    "    sys.exit(3)\n"
)


def byte_locked_by_another_process(path: str, offset: int) -> bool:
    """Whether another process than a new probe holds a POSIX lock on byte ``offset`` of
    ``path`` (the probe, a process of its own, tries to lock it exclusively)."""
    probe = [sys.executable, "-c", _LOCK_PROBE, path, str(offset)]
    return subprocess.run(probe, check=False).returncode == 3


def _open_descriptors() -> list[str] | None:
    """This process's open descriptors, where the system lists them (Linux); else None. The
    sync itself finds nothing to go by there, and the lock must stay held all the same."""
    fds = Path("/proc/self/fd")
    return sorted(p.name for p in fds.iterdir()) if fds.is_dir() else None
