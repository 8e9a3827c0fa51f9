"""The writer: one thread owns all writes and commits many requests in one transaction.

Requests hand their validated events to the writer and wait; the writer drains whatever has
queued up while the previous transaction ran, merges and commits it, then answers each waiting
request. So throughput grows with load (group commit), and a request is answered only after its
data is committed ("accepted means durable"). When too much is waiting, new work is refused
with 503 + Retry-After instead of queueing without bound.

With several ``serve`` processes on one SQLite file, each process has its writer; they take
turns through an exclusive lock on a file beside the database (``flock``, which wakes the next
waiter at once, where SQLite's own busy handler would poll with sleeps). Merging, pricing and
encoding rows happen before the lock is taken, so the processes do that part side by side and
hold the lock only to look up stored rows and write.

On SQLite, commits only append to the write-ahead log; a checkpointer thread copies the log
into the database file (and syncs it) in the background whenever it holds more than
``CHECKPOINT_WAL_BYTES`` not yet copied, so that work never delays a commit; one process at a
time does it for a shared file. SQLite writes a log from its start again once it has all been
copied, over the blocks the file already has (the file is cut back only when it grew past twice
that size). Under a load that keeps some writer in a transaction at all times (two processes
taking turns), the log would never start over: see ``Writer._checkpoint_loop`` for how the
checkpointer makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per SQLite file
    fcntl = None  # type: ignore[assignment]

from sqlalchemy.engine import Connection, Engine

from ..domain.events import Event
from ..errors import Overloaded, TracehouseError
from ..pricing.registry import ModelRegistry
from ..store.writes import PreparedBatch, commit_prepared, prepare_events

log = logging.getLogger("tracehouse.writer")

_STOP = object()
# Under load the log grows by about 10 KB per span (every commit writes each index page it
# touched again). A checkpoint copies only the last version of each page, so the longer the log
# between checkpoints, the fewer copies and syncs per span: with 128 MiB against 32 MiB the bench
# stored 9 % more spans/s with two processes and 3 % more with one (bench/README.md). The cost:
# up to 128 MiB more disk for the log, and a crashed process's successor reads that much once
# when it opens the database.
CHECKPOINT_WAL_BYTES = 128 * 2**20
# When the log starts over, SQLite cuts the file back to this size if it is larger. Cutting it
# back to a quarter of the threshold cost the commit that started the log over 35-50 ms (the
# file system freeing the blocks, under the writers' lock, once per round), and the log then
# grew the file again block by block: keeping the file stored 2-33 % more spans/s in nine
# interleaved pairs (bench/README.md). So only a file that grew past twice the threshold (a long
# read kept the log from starting over) is cut back.
_WAL_FILE_KEPT_BYTES_PER_THRESHOLD = 2
_CHECKPOINT_POLL_S = 1.0
# Lock files beside a SQLite database: the writers' (one commits at a time) and the
# checkpointers' turn (one checkpoints at a time).
WRITER_LOCK_SUFFIX = ".writer-lock"
CHECKPOINT_TURN_SUFFIX = ".checkpoint-lock"


@dataclass
class _Job:
    future: Future[Any]
    events: Sequence[tuple[str, Event]] = ()
    call: Callable[[Connection], Any] | None = None
    size: int = field(default=1)


class Writer:
    def __init__(
        self,
        engine: Engine,
        *,
        max_queue_events: int,
        max_batch_events: int,
        models: ModelRegistry | None = None,
        checkpoint_wal_bytes: int = CHECKPOINT_WAL_BYTES,
    ) -> None:
        self._engine = engine
        self._checkpoint_wal_bytes = checkpoint_wal_bytes
        self._models = models
        self._max_queue = max_queue_events
        self._max_batch = max_batch_events
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self.commits = 0
        self.events_written = 0
        self._sqlite_file = _sqlite_file(engine)
        self._lock_fd: int | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_wake = threading.Event()
        self._stopping = threading.Event()
        self.checkpoints = 0
        self._stop_seen = False
        # Checkpoint rounds that copied their last frames holding the writers' lock.
        self.checkpoints_finished_locked = 0

    @property
    def pending_events(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._sqlite_file is not None and fcntl is not None:
            self._lock_fd = self._open_lock_file()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="tracehouse-writer", daemon=True)
        self._thread.start()
        if self._sqlite_file is not None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="tracehouse-checkpointer", daemon=True
            )
            self._checkpointer.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        self._stopping.set()
        self._checkpoint_wake.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout)
            self._checkpointer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _enqueue(self, job: _Job) -> Future[Any]:
        with self._lock:
            if self._pending + job.size > self._max_queue and self._pending > 0:
                raise Overloaded(
                    "Ingestion queue is full; retry after the indicated delay", retry_after=1
                )
            self._pending += job.size
        self._queue.put(job)
        return job.future

    def submit(self, project_id: str, events: Sequence[Event]) -> Future[None]:
        """Queue events of one project; the future resolves once they are committed."""
        pairs = [(project_id, e) for e in events]
        return self._enqueue(_Job(Future(), events=pairs, size=max(1, len(pairs))))

    def call(self, fn: Callable[[Connection], Any]) -> Future[Any]:
        """Run ``fn(conn)`` in a writer transaction (deletes and other writes)."""
        return self._enqueue(_Job(Future(), call=fn))

    async def write(self, project_id: str, events: Sequence[Event]) -> None:
        if events:
            await asyncio.wrap_future(self.submit(project_id, events))

    async def run(self, fn: Callable[[Connection], Any]) -> Any:
        return await asyncio.wrap_future(self.call(fn))

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._drop_connection()

    def _serve(self) -> None:
        self._stop_seen = False
        while not self._stop_seen:
            item = self._queue.get()
            if item is _STOP:
                break
            jobs: list[_Job] = [item]
            self._take_queued(jobs)
            self._process(jobs)  # may add the jobs that queued while it waited for the lock
            with self._lock:
                self._pending -= sum(job.size for job in jobs)

    def _take_queued(self, jobs: list[_Job]) -> int:
        """Add what is queued to ``jobs`` (without waiting), up to a batch; the count added."""
        size = sum(job.size for job in jobs)
        added = 0
        while size < self._max_batch and not self._stop_seen:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                self._stop_seen = True
                break
            jobs.append(nxt)
            size += nxt.size
            added += 1
        return added

    def _process(self, jobs: list[_Job]) -> None:
        try:
            results = self._transaction(jobs, grow=True)
        except Exception as exc:
            if len(jobs) == 1:
                _log_failure(exc)
                self._fail(jobs[0], exc)
                return
            # Isolate the failing request; the others still commit.
            for job in jobs:
                try:
                    (result,) = self._transaction([job])
                except Exception as job_exc:
                    _log_failure(job_exc)
                    self._fail(job, job_exc)
                else:
                    self._resolve(job, result)
            return
        for job, result in zip(jobs, results, strict=True):
            self._resolve(job, result)

    def _transaction(self, jobs: list[_Job], grow: bool = False) -> list[Any]:
        """Commit ``jobs`` in one transaction. With ``grow``, while another process holds the
        writers' lock, the jobs queued meanwhile are prepared and added (to ``jobs`` too)."""
        steps = self._prepare(jobs)

        def more() -> bool:
            first = len(jobs)
            if not self._take_queued(jobs):
                return False
            steps.extend(self._prepare(jobs[first:]))
            return True

        with self._connection() as conn:
            called = self._commit(conn, steps, more if grow else None)
        self.commits += 1
        self.events_written += sum(len(j.events) for j in jobs)
        self._checkpoint_wake.set()
        return [called.get(id(job)) for job in jobs]

    def _prepare(self, jobs: Sequence[_Job]) -> list[PreparedBatch | _Job]:
        """Consecutive event jobs form one prepared segment; calls run between segments, in
        order."""
        steps: list[PreparedBatch | _Job] = []
        events: list[tuple[str, Event]] = []
        dialect = self._engine.dialect
        for job in jobs:
            if job.call is None:
                events.extend(job.events)
                continue
            if events:
                steps.append(prepare_events(events, self._models, dialect))
                events = []
            steps.append(job)
        if events:
            steps.append(prepare_events(events, self._models, dialect))
        return steps

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """On SQLite, the writer's own connection, kept from one transaction to the next.

        SQLite keeps a connection's page cache between transactions only while no other
        connection has written in between. The pool hands out the connection that has waited
        longest, which other connections have written past since, so every transaction would
        read again the pages its inserts touch; the writer's own connection keeps them (a third
        fewer page reads under load in ``bench/ingest_otlp.py``). On PostgreSQL the pool's
        connections are used as before: their check on checkout replaces one the server has
        dropped, where a kept connection would fail the next batch.
        """
        if self._sqlite_file is None:
            with self._engine.connect() as conn:
                yield conn
            return
        if self._conn is None:
            self._conn = self._connect_own()
        conn = self._conn
        try:
            yield conn
        except BaseException:
            if conn.invalidated:  # e.g. a disk I/O error: the next transaction connects anew
                self._drop_connection()
            raise

    def _connect_own(self) -> Connection:
        conn = self._engine.connect()
        if self._checkpointer is not None:
            # No checkpoint inside a commit: the checkpointer thread does it. When a commit
            # starts the log over, a file that grew far past the threshold is cut back (see
            # _WAL_FILE_KEPT_BYTES_PER_THRESHOLD). Both are settings of the connection, so they
            # are made once, when the writer's own connection opens.
            kept = self._checkpoint_wal_bytes * _WAL_FILE_KEPT_BYTES_PER_THRESHOLD
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            conn.exec_driver_sql(f"PRAGMA journal_size_limit={kept}")
            conn.commit()  # ends the transaction SQLAlchemy began for the statements
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _commit(
        self,
        conn: Connection,
        steps: list[PreparedBatch | _Job],
        more: Callable[[], bool] | None = None,
    ) -> dict[int, Any]:
        with self._exclusive(more), conn.begin():
            called = {}
            for step in steps:
                if isinstance(step, PreparedBatch):
                    commit_prepared(conn, step, self._models)
                else:
                    assert step.call is not None
                    called[id(step)] = step.call(conn)
        return called

    def _checkpoint_loop(self) -> None:
        """Copy the SQLite write-ahead log into the database once it holds much not yet copied.

        PASSIVE never waits for, nor blocks, the writer or readers; frames still in use are
        left for the next round. At stop, one last checkpoint leaves an empty log behind.

        SQLite starts the log over only at a write transaction whose snapshot began with every
        frame copied. While writers commit back to back (two processes taking turns, each
        always ready with its next batch), a checkpoint never catches up with them: the frames
        of the commits made while it copies are left behind it, and the log file grew by the
        whole load (1.4 GB in 20 s of ``bench/ingest_otlp.py --workers 2``). So each round
        copies what it can without the lock, then what the commits of that time added holding
        the writers' lock (a short pass, once per ``CHECKPOINT_WAL_BYTES`` of log), and the next
        writer starts the log over.
        """
        assert self._sqlite_file is not None
        wal = self._sqlite_file + "-wal"
        shm = self._sqlite_file + "-shm"
        lock_fd = turn_fd = None
        if self._lock_fd is not None:  # its own open file: flock excludes this process's writer
            lock_fd = self._open_lock_file()
            turn_fd = self._open_lock_file(CHECKPOINT_TURN_SUFFIX)
        try:
            while True:
                self._checkpoint_wake.wait(_CHECKPOINT_POLL_S)
                self._checkpoint_wake.clear()
                stopping = self._stopping.is_set()
                try:
                    with self._checkpoint_turn(turn_fd, stopping) as mine:
                        if mine:
                            self._checkpoint_round(wal, shm, lock_fd, stopping)
                except FileNotFoundError:
                    pass
                except Exception:
                    log.exception("WAL checkpoint failed; will try again")
                if stopping:
                    return
        finally:
            for fd in (lock_fd, turn_fd):
                if fd is not None:
                    os.close(fd)

    @staticmethod
    @contextlib.contextmanager
    def _checkpoint_turn(turn_fd: int | None, stopping: bool) -> Iterator[bool]:
        """Whether this process's checkpointer has the turn: one at a time per database file.

        Every serve process has a checkpointer, and each sees the same backlog. Without turns,
        the second to look found the log busy with the first one's checkpoint, and then waited
        for the writers' lock and held it for a pass that copied nothing: commits stalled for
        up to 100 ms once per round. So a process whose turn is taken skips the round (at stop
        it waits, for its last checkpoint).
        """
        if turn_fd is None or fcntl is None:
            yield True
            return
        try:
            fcntl.flock(turn_fd, fcntl.LOCK_EX | (0 if stopping else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(turn_fd, fcntl.LOCK_UN)

    def _checkpoint_round(self, wal: str, shm: str, lock_fd: int | None, stopping: bool) -> None:
        # What the log holds that no checkpoint has copied: from the WAL index, since the file
        # keeps its size when the log starts over. The file's size is the fallback when the index
        # cannot be read (a header caught between its two copies, or another format): it can
        # only overstate the backlog, so a round may copy early but never falls behind.
        backlog = _wal_backlog_bytes(shm)
        if backlog is None:
            backlog = os.path.getsize(wal)
        if not stopping and backlog < self._checkpoint_wal_bytes:
            return
        with self._engine.connect() as conn:
            # At stop TRUNCATE also empties the log file (if no one is reading).
            conn.exec_driver_sql(f"PRAGMA wal_checkpoint({'TRUNCATE' if stopping else 'PASSIVE'})")
            self.checkpoints += 1
            if stopping or lock_fd is None or fcntl is None:
                return
            left = _wal_backlog_bytes(shm)
            if left is None or left > 0:
                # The pass above synced the log but not the database file: SQLite syncs that
                # only once a pass reaches the end of the log, which the locked pass below
                # does. Synced here, before the lock, that pass syncs only what it copies
                # itself (a third less time under the writers' lock, bench/README.md).
                _sync_open_files(wal.removesuffix("-wal"), wal)
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                try:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)
                self.checkpoints_finished_locked += 1

    def _open_lock_file(self, suffix: str = WRITER_LOCK_SUFFIX) -> int:
        """A new open file of a lock beside the SQLite database: the writers' by default
        (``flock`` locks belong to the open file, so each one excludes the others, also within
        a process)."""
        assert self._sqlite_file is not None
        return os.open(self._sqlite_file + suffix, os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def _exclusive(self, more: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold the cross-process writer lock (SQLite); nothing to hold on PostgreSQL.

        While another process holds it, ``more()`` adds to the waiting transaction what has
        queued since (True when it did). Each call is a request or a few that would otherwise
        wait for the next transaction; a larger transaction writes each index page it touches
        once for more rows. Once nothing more is queued, it waits for the lock.
        """
        fd = self._lock_fd
        if fd is None or fcntl is None:
            yield
            return
        while True:
            if more is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not more():
                    more = None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _resolve(job: _Job, result: Any) -> None:
        if not job.future.done():
            job.future.set_result(result)

    @staticmethod
    def _fail(job: _Job, exc: Exception) -> None:
        if not job.future.done():
            job.future.set_exception(exc)


# The WAL index (https://www.sqlite.org/walformat.html), in the machine's byte order: two copies
# of a 48-byte header with the version, the page size at byte 14 (1 for 65536) and the last valid
# frame (mxFrame) at byte 16; then the checkpoint info, whose first field (nBackfill, byte 96)
# counts the frames already copied into the database. SQLite's multi-process format since 3.7.0.
_WAL_INDEX = struct.Struct("=I4xI?xHI")  # iVersion, iChange, isInit, szPage, mxFrame
_WAL_INDEX_VERSION = 3007000
_WAL_FRAME_HEADER = 24


def _wal_backlog_bytes(shm_path: str) -> int | None:
    """Bytes of log that no checkpoint has copied yet, read from the WAL index ``shm_path``;
    None when it cannot be read (no descriptor of it open in this process, a writer between the
    two copies of the header, another format).

    Read through the descriptor SQLite has open on the index, never through one of our own:
    closing any descriptor of the file drops every POSIX lock this process holds on it, and
    SQLite keeps its WAL locks there. Without them, another process's connection took the index
    for abandoned, truncated it to start it anew and made this process's mapping of it fault
    (SIGBUS: an API process died so under load, fourteenth session in bench/README.md).
    """
    fd = _open_descriptors(shm_path).get(shm_path)
    if fd is None:
        return None
    try:
        head = os.pread(fd, 100, 0)
        same = os.fstat(fd).st_ino == os.stat(shm_path).st_ino  # not closed and reused since
    except OSError:
        return None
    if not same or len(head) < 100 or head[:48] != head[48:96]:
        return None
    version, _change, initialised, page_size, max_frame = _WAL_INDEX.unpack_from(head)
    if version != _WAL_INDEX_VERSION or not initialised:
        return None
    (backfilled,) = struct.unpack_from("=I", head, 96)
    page_size = 65536 if page_size == 1 else page_size
    return max(0, max_frame - backfilled) * (page_size + _WAL_FRAME_HEADER)


def _open_descriptors(*paths: str) -> dict[str, int]:
    """For each of the files ``paths`` that this process has open, one of its descriptors
    (Linux: ``/proc/self/fd``, listed once); none where there is no such listing.

    No descriptor is opened here: closing any descriptor of a database file (or of its WAL
    index) drops all the POSIX locks this process holds on it, SQLite's included. A descriptor
    found here stays SQLite's: use it at once, and never close it.
    """
    wanted: dict[tuple[int, int], str] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            found = os.stat(path)
            wanted[(found.st_dev, found.st_ino)] = path
    out: dict[str, int] = {}
    if not wanted:
        return out
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for name in names:
        try:
            fd = int(name)
            found = os.fstat(fd)
        except (OSError, ValueError):
            continue
        key = (found.st_dev, found.st_ino)
        if key in wanted:
            out[wanted.pop(key)] = fd
            if not wanted:
                break
    return out


def _sync_open_files(*paths: str) -> None:
    """``fdatasync`` each of the files ``paths`` through a descriptor this process already has
    open on it (``_open_descriptors``); nothing for a file with none.

    Only ever an early sync: SQLite still makes every sync its safety needs.
    """
    for fd in _open_descriptors(*paths).values():
        with contextlib.suppress(OSError):
            os.fdatasync(fd)  # a sync reaches the file, whichever descriptor it goes by


def _sqlite_file(engine: Engine) -> str | None:
    """The SQLite database file of ``engine`` (None: PostgreSQL, or not a file database)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _log_failure(exc: BaseException) -> None:
    """Unexpected failures are logged with their stack; a refused request (e.g. a 400 raised
    by a write call) is the caller's answer, not a server fault."""
    if isinstance(exc, TracehouseError) and exc.status < 500:
        log.debug("write refused: %s", exc)
    else:
        log.error("write failed", exc_info=exc)
