"""The writer: one thread owns all writes and commits many requests in one transaction.

Requests hand their validated events to the writer and wait; the writer drains whatever has
queued up while the previous transaction ran, merges and commits it, then answers each waiting
request. So throughput grows with load (group commit), and a request is answered only after its
data is committed ("accepted means durable"). When too much is waiting, new work is refused
with 503 + Retry-After instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from ..domain.events import Event
from ..errors import Overloaded
from ..pricing.registry import ModelRegistry
from ..store.writes import apply_events

log = logging.getLogger("tracehouse.writer")

_STOP = object()


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
    ) -> None:
        self._engine = engine
        self._models = models
        self._max_queue = max_queue_events
        self._max_batch = max_batch_events
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.events_written = 0

    @property
    def pending_events(self) -> int:
        return self._pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tracehouse-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

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
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            jobs: list[_Job] = [item]
            size = item.size
            while size < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                jobs.append(nxt)
                size += nxt.size
            self._process(jobs)
            with self._lock:
                self._pending -= size

    def _process(self, jobs: list[_Job]) -> None:
        try:
            results = self._transaction(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                log.exception("write failed")
                self._fail(jobs[0], exc)
                return
            # Isolate the failing request; the others still commit.
            for job in jobs:
                try:
                    (result,) = self._transaction([job])
                except Exception as job_exc:
                    log.exception("write failed")
                    self._fail(job, job_exc)
                else:
                    self._resolve(job, result)
            return
        for job, result in zip(jobs, results, strict=True):
            self._resolve(job, result)

    def _transaction(self, jobs: list[_Job]) -> list[Any]:
        results: list[Any] = []
        with self._engine.begin() as conn:
            events: list[tuple[str, Event]] = []
            for job in jobs:
                if job.call is None:
                    events.extend(job.events)
                    results.append(None)
                else:
                    if events:
                        apply_events(conn, events, self._models)
                        events = []
                    results.append(job.call(conn))
            if events:
                apply_events(conn, events, self._models)
        self.commits += 1
        self.events_written += sum(len(j.events) for j in jobs)
        return results

    @staticmethod
    def _resolve(job: _Job, result: Any) -> None:
        if not job.future.done():
            job.future.set_result(result)

    @staticmethod
    def _fail(job: _Job, exc: Exception) -> None:
        if not job.future.done():
            job.future.set_exception(exc)
