"""The scale-out write path: a Redis Stream is the ingest log between API and database.

API processes (``StreamWriter``) append one stream entry per accepted request and answer once
Redis holds it. ``tracehouse worker`` processes (``StreamConsumer``) read entries through one
consumer group, merge the events of many requests, commit them to PostgreSQL in one transaction
and only then acknowledge (XACK) and delete (XDEL) the entries. So the stream holds exactly the
requests that are accepted but not yet committed, and its length is the backlog.

A worker that dies mid-batch leaves its entries pending in the group; any worker claims them
(XAUTOCLAIM) once they have been idle for ``worker_reclaim_idle_ms``. Merging is idempotent (an
event applied twice changes nothing, and rows are upserted by id), so an entry committed twice
(a worker killed between commit and acknowledgement) is still stored exactly once. An entry that
cannot be decoded, or keeps failing while the database is reachable, moves to the dead-letter
stream ``<stream>:dead`` (with the error) instead of blocking the group.

Entries carry events as JSON (orjson), never pickle: JSON-native values stay as they are and
every other value (datetimes, Decimals, tuples, non-finite floats, big integers, bytes, dicts
with non-string keys) becomes a tagged object, so decoding gives back exactly what was encoded.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any, cast

import anyio
import orjson
import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..config import Settings
from ..domain.events import FIELDS_BY_KIND, Event
from ..errors import Overloaded
from ..pricing.registry import ModelRegistry
from ..store.writes import commit_prepared, prepare_events
from .pipeline import Writer

log = logging.getLogger("tracehouse.stream")

GROUP = "tracehouse-writers"
FORMAT = b"1"  # the entry format; a worker dead-letters entries of a format it does not know
_TAG = "$tracehouse"  # key of a tagged (non-JSON) value; a user dict with this key is tagged too
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson writes as a JSON integer
_OFFLOAD_EVENTS = 200  # encode larger requests in a thread, off the event loop
_BLOCK_MS = 500  # how long a worker's read waits for new entries (bounds its SIGTERM delay)
_PRUNE_EVERY_S = 60.0  # how often a worker looks for consumers that are gone
_FORGET_AFTER_MS = 600_000  # a consumer silent this long, holding nothing, is gone


def dead_letter_stream(stream: str) -> str:
    return stream + ":dead"


# -- encoding ---------------------------------------------------------------------------------


class UndecodableEntry(ValueError):
    """A stream entry this version cannot turn back into events."""


def encode_value(value: Any) -> Any:
    """A JSON-serialisable form of ``value`` that ``decode_value`` turns back into it exactly."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else {_TAG: "int", "v": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {_TAG: "float", "v": repr(value)}
    if kind is dict:
        if _TAG not in value and all(type(k) is str for k in value):
            return {k: encode_value(v) for k, v in value.items()}
        return {_TAG: "map", "v": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if kind is list:
        return [encode_value(v) for v in value]
    if kind is tuple:
        return {_TAG: "tuple", "v": [encode_value(v) for v in value]}
    if isinstance(value, datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, dtime):
        return {_TAG: "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    # Subclasses of the JSON types (str/int enums and the like) keep their plain value.
    if isinstance(value, str):
        return str.__str__(value)  # the text itself (``str()`` of a str enum is its name)
    bases: tuple[Callable[[Any], Any], ...] = (int, float, dict, list, tuple)
    for base in bases:
        if isinstance(value, cast(type, base)):
            return encode_value(base(value))
    raise TypeError(f"cannot put a {kind.__name__} value in a stream entry")


def _decode_tagged(tag: Any, value: Any) -> Any:
    if tag == "datetime":
        return datetime.fromisoformat(value)
    if tag == "decimal":
        return Decimal(value)
    if tag == "map":
        return {decode_value(k): decode_value(v) for k, v in value}
    if tag == "tuple":
        return tuple(decode_value(v) for v in value)
    if tag == "float":
        return float(value)
    if tag == "int":
        return int(value)
    if tag == "date":
        return date.fromisoformat(value)
    if tag == "time":
        return dtime.fromisoformat(value)
    if tag == "timedelta":
        days, seconds, micros = value
        return timedelta(days=days, seconds=seconds, microseconds=micros)
    if tag == "bytes":
        return base64.b64decode(value)
    raise UndecodableEntry(f"unknown value tag {tag!r}")


def decode_value(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        if _TAG in value:
            return _decode_tagged(value[_TAG], value.get("v"))
        return {k: decode_value(v) for k, v in value.items()}
    if kind is list:
        return [decode_value(v) for v in value]
    return value


def encode_events(events: Sequence[Event]) -> bytes:
    return orjson.dumps(
        [
            [
                e.kind,
                e.entity_id,
                e.event_id,
                encode_value(e.timestamp),
                e.is_create,
                e.weak,
                {k: encode_value(v) for k, v in e.fields.items()},
            ]
            for e in events
        ]
    )


def decode_events(data: bytes) -> list[Event]:
    try:
        rows = orjson.loads(data)
        events = []
        for kind, entity_id, event_id, timestamp, is_create, weak, fields in rows:
            if kind not in FIELDS_BY_KIND:
                raise UndecodableEntry(f"unknown entity kind {kind!r}")
            ts = decode_value(timestamp)
            if not isinstance(ts, datetime) or not isinstance(fields, dict):
                raise UndecodableEntry("malformed event")
            events.append(
                Event(
                    kind=kind,
                    entity_id=entity_id,
                    event_id=event_id,
                    timestamp=ts,
                    is_create=bool(is_create),
                    fields={k: decode_value(v) for k, v in fields.items()},
                    weak=bool(weak),
                )
            )
        return events
    except UndecodableEntry:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ) as exc:
        raise UndecodableEntry(f"{type(exc).__name__}: {exc}") from exc


def entry_fields(project_id: str, events: Sequence[Event]) -> dict[str, bytes]:
    """The fields of the stream entry of one request."""
    return {"f": FORMAT, "p": project_id.encode(), "e": encode_events(events)}


def decode_entry(fields: Mapping[bytes, bytes]) -> tuple[str, list[Event]]:
    """(project id, events) of a stream entry; ``UndecodableEntry`` when it is not one."""
    if fields.get(b"f") != FORMAT:
        raise UndecodableEntry(f"unknown entry format {fields.get(b'f')!r}")
    project, data = fields.get(b"p"), fields.get(b"e")
    if project is None or data is None:
        raise UndecodableEntry("entry without project or events")
    try:
        project_id = project.decode()
    except UnicodeDecodeError as exc:
        raise UndecodableEntry("project id is not UTF-8") from exc
    return project_id, decode_events(data)


def _is_busygroup(exc: redis.ResponseError) -> bool:
    return str(exc).startswith("BUSYGROUP")


# -- the API side -----------------------------------------------------------------------------


class StreamWriter:
    """The write path of an API process in the scale-out profile.

    ``write`` appends one entry per request and returns once Redis has it (with Redis'
    persistence settings deciding how durable that is). ``run`` (deletes, model definitions)
    still goes to the database, through the process's own ``Writer``.
    """

    def __init__(self, settings: Settings, writer: Writer) -> None:
        assert settings.redis_url
        self._url = settings.redis_url
        self._stream = settings.stream_name
        self._max_backlog = settings.stream_max_backlog
        self._writer = writer
        self._redis: aioredis.Redis | None = None
        self._backlog = 0
        self._backlog_at = 0.0

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(self._url)
        try:
            # Create the group with the stream, so no entry is ever appended before the group
            # exists (it starts at id 0 either way: a worker sees every entry).
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not _is_busygroup(exc):
                raise

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("StreamWriter is not started")
        return self._redis

    async def write(self, project_id: str, events: Sequence[Event]) -> None:
        if not events:
            return
        client = self._client()
        try:
            if self._backlog >= self._max_backlog and time.monotonic() - self._backlog_at > 0.1:
                self._note_backlog(await client.xlen(self._stream))
            if self._backlog >= self._max_backlog:
                raise Overloaded(
                    "Ingestion backlog is full; retry after the indicated delay", retry_after=1
                )
            if len(events) > _OFFLOAD_EVENTS:
                fields = await anyio.to_thread.run_sync(entry_fields, project_id, events)
            else:
                fields = entry_fields(project_id, events)
            async with client.pipeline(transaction=False) as pipe:
                pipe.xadd(self._stream, cast(Any, fields))
                pipe.xlen(self._stream)
                _, length = await pipe.execute()
        except redis.RedisError as exc:
            log.error("cannot append to the ingest stream: %s", exc)
            raise Overloaded(
                "The ingest log is unavailable; retry after the indicated delay", retry_after=5
            ) from exc
        self._note_backlog(int(length))

    def _note_backlog(self, length: int) -> None:
        self._backlog = length
        self._backlog_at = time.monotonic()

    async def run(self, fn: Callable[[Connection], Any]) -> Any:
        return await self._writer.run(fn)

    async def status(self) -> dict[str, int]:
        """Backlog figures for readiness: entries waiting, entries read but not acknowledged,
        and consumers (workers) known to the group. Raises ``redis.RedisError``."""
        client = self._client()
        async with client.pipeline(transaction=False) as pipe:
            pipe.xlen(self._stream)
            pipe.xinfo_groups(self._stream)
            # XINFO GROUPS fails when the stream is gone (a Redis restart without persistence):
            # then nothing is waiting, and the next XADD creates the stream again.
            length, groups = await pipe.execute(raise_on_error=False)
        if isinstance(length, Exception):
            raise length
        if isinstance(groups, Exception):
            groups = []
        group: dict[str, Any] = next((g for g in groups if _text(g.get("name")) == GROUP), {})
        self._note_backlog(int(length))
        return {
            "backlog": int(length),
            "pending": int(group.get("pending") or 0),
            "consumers": int(group.get("consumers") or 0),
        }


def _describe(exc: BaseException | None) -> str:
    """An error in one line, without the statement and its parameters (they hold user data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the worker side --------------------------------------------------------------------------


class _Stopping(Exception):
    """Raised inside a batch when the worker was asked to stop while waiting for the database."""


@dataclass
class _Entry:
    id: bytes
    fields: dict[bytes, bytes]
    project_id: str = ""
    events: list[Event] = field(default_factory=list)


class StreamConsumer:
    """One consumer of the group: read, merge, commit, acknowledge — in that order."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        client: redis.Redis,
        *,
        models: ModelRegistry | None = None,
        name: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._engine = engine
        self._redis = client
        self._models = models
        self._stream = settings.stream_name
        self._dead = dead_letter_stream(settings.stream_name)
        self._batch = settings.worker_batch_entries
        self._max_events = settings.writer_batch_events
        self._reclaim_ms = settings.worker_reclaim_idle_ms
        self._max_attempts = settings.worker_max_attempts
        self._delay = settings.worker_commit_delay_ms / 1000
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stop = stop or threading.Event()
        self._claim_cursor = "0-0"
        self._claimed_at = 0.0
        self._pruned_at = time.monotonic()
        self.commits = 0
        self.entries_committed = 0
        self.events_committed = 0
        self.dead_letters = 0

    def ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not _is_busygroup(exc):
                raise

    def run(self) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        self.ensure_group()
        log.info("worker %s consuming %s (group %s)", self.name, self._stream, GROUP)
        failures = 0
        while not self._stop.is_set():
            try:
                self.step()
                failures = 0
            except _Stopping:
                break
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("consumer group vanished (Redis restarted?); creating it again")
                self.ensure_group()
            except redis.RedisError as exc:
                failures += 1
                log.error("Redis unavailable (%s); retrying", exc)
                self._stop.wait(min(0.5 * failures, 5))
        self._leave_group()
        log.info(
            "worker %s stopped: %d entries (%d events) in %d commits, %d dead letters",
            self.name,
            self.entries_committed,
            self.events_committed,
            self.commits,
            self.dead_letters,
        )

    def step(self, block_ms: int = _BLOCK_MS) -> int:
        """Read one batch (reclaimed entries first), store it, acknowledge it. Returns its size."""
        entries = self._reclaim()
        if len(entries) < self._batch:
            reply = self._redis.xreadgroup(
                GROUP,
                self.name,
                {self._stream: ">"},
                count=self._batch - len(entries),
                block=None if entries else block_ms,
            )
            for _stream, items in cast(list[Any], reply or []):
                entries += [_Entry(entry_id, fields) for entry_id, fields in items]
        if entries:
            self._process(entries)
        return len(entries)

    def _reclaim(self) -> list[_Entry]:
        """Entries another consumer read but left unacknowledged for too long (checked at most
        every half reclaim period)."""
        now = time.monotonic()
        if now - self._claimed_at < min(1.0, self._reclaim_ms / 2000):
            return []
        self._claimed_at = now
        reply = cast(
            list[Any],
            self._redis.xautoclaim(
                self._stream,
                GROUP,
                self.name,
                min_idle_time=self._reclaim_ms,
                start_id=self._claim_cursor,
                count=self._batch,
            ),
        )
        cursor, items = reply[0], reply[1]
        self._claim_cursor = _text(cursor)
        if now - self._pruned_at > _PRUNE_EVERY_S:
            self._pruned_at = now
            self._prune_consumers()
        # Redis 6.2 lists entries deleted from the stream with no fields: nothing to store.
        gone = [entry_id for entry_id, fields in items if fields is None]
        if gone:
            self._redis.xack(self._stream, GROUP, *gone)
        entries = [_Entry(entry_id, fields) for entry_id, fields in items if fields is not None]
        if not entries:
            return []
        log.warning("worker %s reclaimed %d pending entries", self.name, len(entries))
        # An entry delivered too often keeps killing its workers: set it aside.
        delivered = {
            _text(p["message_id"]): int(p["times_delivered"])
            for p in cast(
                list[Any],
                self._redis.xpending_range(
                    self._stream,
                    GROUP,
                    entries[0].id,
                    entries[-1].id,
                    len(entries) * 2,
                    consumername=self.name,
                ),
            )
        }
        kept = []
        for entry in entries:
            if delivered.get(_text(entry.id), 0) > self._max_attempts:
                self._dead_letter(entry, "delivered too many times without being committed")
            else:
                kept.append(entry)
        return kept

    def _prune_consumers(self) -> None:
        """Forget consumers (workers gone for good) that hold nothing and were not heard of
        for a long time, so the group's consumer count stays the count of live workers."""
        for consumer in cast(list[Any], self._redis.xinfo_consumers(self._stream, GROUP)):
            name = _text(consumer.get("name"))
            idle = int(consumer.get("idle") or 0)
            if name != self.name and not consumer.get("pending") and idle > _FORGET_AFTER_MS:
                self._redis.xgroup_delconsumer(self._stream, GROUP, name)

    def _process(self, entries: list[_Entry]) -> None:
        decoded = []
        for entry in entries:
            try:
                entry.project_id, entry.events = decode_entry(entry.fields)
            except UndecodableEntry as exc:
                self._dead_letter(entry, f"undecodable: {exc}")
            else:
                decoded.append(entry)
        if not decoded:
            return
        if self._delay:
            time.sleep(self._delay)
        # One transaction per chunk of at most ``writer_batch_events`` events (whole entries).
        chunk: list[_Entry] = []
        size = 0
        for entry in decoded:
            if chunk and size + len(entry.events) > self._max_events:
                self._ack(self._store(chunk))
                chunk, size = [], 0
            chunk.append(entry)
            size += len(entry.events)
        self._ack(self._store(chunk))

    def _store(self, entries: list[_Entry]) -> list[_Entry]:
        """Commit the entries in one transaction; if that fails while the database is up, one
        by one, dead-lettering those that keep failing. Returns the entries committed."""
        error = self._try_commit(entries)
        if error is None:
            return entries
        stored = []
        for entry in entries:
            for attempt in range(self._max_attempts):
                if len(entries) > 1 or attempt > 0:
                    error = self._try_commit([entry])
                if error is None:
                    stored.append(entry)
                    break
                if attempt + 1 < self._max_attempts:
                    self._stop.wait(min(0.05 * 2**attempt, 1.0))
            else:
                self._dead_letter(entry, _describe(error))
        return stored

    def _try_commit(self, entries: list[_Entry]) -> Exception | None:
        """Commit, waiting (without counting attempts) while the database is unreachable."""
        waited = 0
        while True:
            try:
                self._commit(entries)
                return None
            except Exception as exc:
                if self._database_reachable():
                    log.warning("commit of %d entries failed: %s", len(entries), _describe(exc))
                    return exc
                waited += 1
                log.error("database unreachable (%s); retrying the batch", _describe(exc))
                if self._stop.wait(min(0.5 * waited, 5)):
                    # The entries stay pending; another worker reclaims them.
                    raise _Stopping from exc

    def _commit(self, entries: list[_Entry]) -> None:
        pairs = [(entry.project_id, event) for entry in entries for event in entry.events]
        if pairs:
            prepared = prepare_events(pairs, self._models, self._engine.dialect)
            with self._engine.begin() as conn:
                commit_prepared(conn, prepared, self._models)
        self.commits += 1
        self.entries_committed += len(entries)
        self.events_committed += len(pairs)

    def _database_reachable(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def _ack(self, entries: list[_Entry]) -> None:
        if not entries:
            return
        ids = [entry.id for entry in entries]
        pipe = self._redis.pipeline(transaction=True)
        pipe.xack(self._stream, GROUP, *ids)
        pipe.xdel(self._stream, *ids)
        pipe.execute()

    def _dead_letter(self, entry: _Entry, reason: str) -> None:
        log.error("stream entry %s moved to %s: %s", _text(entry.id), self._dead, reason[:500])
        fields: dict[Any, Any] = dict(entry.fields)
        fields.update(
            {
                b"entry_id": entry.id,
                b"error": reason.encode()[:10_000],
                b"consumer": self.name.encode(),
            }
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self._dead, fields)
        pipe.xack(self._stream, GROUP, entry.id)
        pipe.xdel(self._stream, entry.id)
        pipe.execute()
        self.dead_letters += 1

    def _leave_group(self) -> None:
        """Remove this consumer from the group when it holds no pending entries."""
        try:
            mine = self._redis.xpending_range(
                self._stream, GROUP, "-", "+", 1, consumername=self.name
            )
            if not mine:
                self._redis.xgroup_delconsumer(self._stream, GROUP, self.name)
        except redis.RedisError as exc:
            log.warning("could not leave the consumer group: %s", exc)


_MIGRATION_LOCK = 0x7472616365686F75  # "tracehou": serialises workers migrating at once


def run_worker(settings: Settings, stop: threading.Event, *, name: str | None = None) -> None:
    """The ``tracehouse worker`` process: migrate (if asked), then consume until ``stop``."""
    from ..pricing.builtin import builtin_models
    from ..store import models as model_store
    from ..store.db import make_engine, migrate

    assert settings.redis_url
    engine = make_engine(settings)
    try:
        if settings.auto_migrate:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                try:
                    migrate(engine)
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
        models = ModelRegistry(builtin_models(), model_store.loader(engine))
        client = redis.Redis.from_url(settings.redis_url)
        try:
            StreamConsumer(settings, engine, client, models=models, name=name, stop=stop).run()
        finally:
            client.close()
    finally:
        engine.dispose()
