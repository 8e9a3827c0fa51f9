"""Which trace each observation id belongs to, on SQLite, without an index on random ids.

On SQLite the observations table has no index on ``(project_id, id)``. Span ids are random, so
such an index put every new span on a leaf page of its own, which was logged whole at every
commit: a quarter to two fifths of the writers' lock time, and half of the log
(``bench/README.md``, fifteenth and sixteenth sessions). The ids live here instead, in three
places:

- ``observation_id_log``. Each observation written for the first time, or moved to another
  trace, appends ``(project, id, trace)`` in the transaction that writes it. The appends go to
  the end of a table ordered by sequence number, a hundred or so to a page.
- **Each process's memory of that log** (``IdTail``): ``(project, id) → (trace, seq)``. Before a
  lookup it reads the rows past the last sequence number it has read (``catch_up``). After a
  crash it reads the whole log again, which is never longer than about ``MERGE_AT`` rows.
- ``observation_ids`` (WITHOUT ROWID, keyed by project and id). Once the log holds ``MERGE_AT``
  rows, ``merge`` sorts the ids in memory and writes them there in key order. It writes
  ``MERGE_CHUNK`` of them per transaction, each short and under the writers' lock, so that a
  merge touches each leaf page about once rather than once per span. It then deletes the merged
  log rows and records their last sequence number in ``observation_id_merge``. Processes drop
  those entries from memory when they read that number.

A lookup tries the transaction's own writes, then memory (the newest), then ``observation_ids``.
Its answer is the trace, and the row is then read through the ``(project_id, trace_id, ...)``
index. An answer can be stale, for instance the trace was deleted since. It then only finds no
row, which the callers treat as "not stored". On PostgreSQL none of this is used: the
observations keep their primary key.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Engine

EntityRef = tuple[str, str]  # (project_id, observation id)
Entry = tuple[str, int]  # (trace id, log sequence number)

MERGE_AT = 32_768  # ids in memory that start a merge (each process holds at most about twice this)
MERGE_CHUNK = 2_048  # ids per merge transaction: a few milliseconds under the writers' lock
_LOOKUP_CHUNK = 512  # ids per lookup statement (padded to a power of two, as writes._stored_ids)

# One statement for a batch's rows, in their order (a JSON array of [project, id, trace]).
_LOG_SQL = (
    "INSERT INTO observation_id_log (project_id, id, trace_id) "
    "SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)"
)
# In observation_ids, ids and traces in lowercase hex of 16 or 32 digits (OTLP's span and trace
# ids, most ids in practice) are stored as their bytes: half the size, so the table costs about
# what the index on the observations' ids it replaces cost. Anything else is stored as it is.
_HEX_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")


def packed(text: str) -> str | bytes:
    return bytes.fromhex(text) if _HEX_ID.fullmatch(text) else text


def unpacked(value: str | bytes) -> str:
    return value.hex() if isinstance(value, bytes) else value


_LOG_HIGH_SQL = "SELECT seq FROM sqlite_sequence WHERE name = 'observation_id_log'"
_MERGE_SQL = (
    "INSERT INTO observation_ids (project_id, id, trace_id, seq) VALUES {values} "
    "ON CONFLICT (project_id, id) DO UPDATE SET trace_id = excluded.trace_id, seq = excluded.seq "
    "WHERE excluded.seq > observation_ids.seq"
)


@dataclass
class IdTail:
    """One process's memory of the log of one database (shared by its threads).

    Two generations: ``entries`` takes what is read or written now; ``older`` is the set a merge
    takes (``rotate``), dropped whole once the log is merged past it. An entry whose number the
    merges have passed (``merged_upto``) is not used: the id may have been written again since,
    in log rows this process never read, as they were merged and deleted before it looked.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    last_seq: int = 0  # the last log number read (or written by this process)
    merged_upto: int = 0  # the log up to here is in observation_ids (and gone from the log)
    entries: dict[EntityRef, Entry] = field(default_factory=dict)
    older: dict[EntityRef, Entry] = field(default_factory=dict)
    older_upto: int = 0  # the last log number ``older`` may hold
    merging: threading.Lock = field(default_factory=threading.Lock)  # one merge at a time

    def get(self, ref: EntityRef) -> Entry | None:
        entry = self.entries.get(ref) or self.older.get(ref)
        if entry is None or entry[1] <= self.merged_upto:
            return None
        return entry


_TAILS: weakref.WeakKeyDictionary[Engine, IdTail] = weakref.WeakKeyDictionary()
_TAILS_LOCK = threading.Lock()
_STATE_KEY = "tracehouse.observation_ids"


def tail_of(engine: Engine) -> IdTail:
    tail = _TAILS.get(engine)
    if tail is None:
        with _TAILS_LOCK:
            tail = _TAILS.setdefault(engine, IdTail())
    return tail


def uses_id_log(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def catch_up(conn: Connection) -> tuple[IdTail, int, int]:
    """Read the log rows this process has not read yet, as ``conn`` sees them now.

    Returns the process's tail, the merged-up-to number and the log's last number as seen. In
    a transaction that writes log rows, only the first call may read (``_state`` sees to it): a
    later one would take the transaction's own rows for committed ones.
    """
    tail = tail_of(conn.engine)
    merged, high = conn.exec_driver_sql(
        f"SELECT (SELECT merged_upto FROM observation_id_merge WHERE id = 1), ({_LOG_HIGH_SQL})"
    ).one()
    merged, high = merged or 0, high or 0
    with tail.lock:
        if high < tail.last_seq:  # another database at this path (restored, replaced): start over
            tail.entries, tail.older, tail.last_seq, tail.merged_upto = {}, {}, 0, 0
        if high > tail.last_seq:
            # The driver's rows as they are (SQLAlchemy's row objects cost more than the rest).
            rows = conn.exec_driver_sql(
                "SELECT seq, project_id, id, trace_id FROM observation_id_log "
                "WHERE seq > ? ORDER BY seq",
                (tail.last_seq,),
            ).cursor.fetchall()
            entries = tail.entries
            for seq, project_id, obs_id, trace_id in rows:
                entries[(project_id, obs_id)] = (trace_id, seq)
            if rows:
                tail.last_seq = rows[-1][0]
        if merged > tail.merged_upto:
            tail.merged_upto = merged
    return tail, merged, high


@dataclass
class _TxnState:
    """What one transaction knows: the tail it caught up with, and the ids it logged itself."""

    txn: Any
    tail: IdTail
    merged: int
    high: int  # the log's last number when it caught up: its own rows are numbered from here
    written: dict[EntityRef, str] = field(default_factory=dict)
    order: list[tuple[EntityRef, str]] = field(default_factory=list)
    numbered: bool = True  # its own rows are numbered high + 1, high + 2, ... (checked)


def _state(conn: Connection) -> _TxnState:
    state: _TxnState | None = conn.info.get(_STATE_KEY)
    if state is not None and state.txn is conn.get_transaction() and state.txn is not None:
        return state
    tail, merged, high = catch_up(conn)
    state = _TxnState(conn.get_transaction(), tail, merged, high)
    conn.info[_STATE_KEY] = state
    return state


def find_traces(conn: Connection, refs: Iterable[EntityRef]) -> dict[EntityRef, str]:
    """The trace each of ``refs`` was last written with, for those that were written (the row
    may have been deleted since)."""
    state = _state(conn)
    written, tail = state.written, state.tail
    found: dict[EntityRef, str] = {}
    missing: dict[str, list[str]] = defaultdict(list)
    for ref in refs:
        trace_id = written.get(ref)
        if trace_id is None:
            entry = tail.get(ref)
            if entry is None:
                missing[ref[0]].append(ref[1])
                continue
            trace_id = entry[0]
        found[ref] = trace_id
    if missing and state.merged < tail.merged_upto:
        # A read older than the last merge this process saw (an explicit long transaction,
        # never the writer): the ids its snapshot has only in the log are no longer in memory.
        _from_log(conn, missing, found)
    for project_id, ids in missing.items():
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            for obs_id, trace_id in conn.exec_driver_sql(*_lookup(project_id, chunk)):
                found.setdefault((project_id, unpacked(obs_id)), unpacked(trace_id))
    return found


def trace_of(conn: Connection, project_id: str, observation_id: str) -> str | None:
    return find_traces(conn, [(project_id, observation_id)]).get((project_id, observation_id))


def _from_log(conn: Connection, missing: dict[str, list[str]], found: dict[EntityRef, str]) -> None:
    for project_id, ids in missing.items():
        wanted = set(ids)
        for obs_id, trace_id in conn.exec_driver_sql(
            "SELECT id, trace_id FROM observation_id_log WHERE project_id = ? ORDER BY seq",
            (project_id,),
        ):
            if obs_id in wanted:
                found[(project_id, obs_id)] = trace_id


_LOOKUPS: dict[int, str] = {}


def _lookup(project_id: str, ids: list[str]) -> tuple[str, tuple[str | bytes, ...]]:
    size = 1 << (len(ids) - 1).bit_length()
    sql = _LOOKUPS.get(size)
    if sql is None:
        sql = _LOOKUPS[size] = (
            "SELECT id, trace_id FROM observation_ids WHERE project_id = ? AND id IN "
            f"({', '.join(['?'] * size)})"
        )
    keys = [packed(obs_id) for obs_id in ids]
    return sql, (project_id, *keys, *([keys[-1]] * (size - len(keys))))


def record_written(conn: Connection, rows: list[tuple[str, str, str]]) -> None:
    """Log ``(project, id, trace)`` of observations this transaction wrote new, or moved to
    another trace."""
    if not rows:
        return
    state = _state(conn)
    last = conn.exec_driver_sql(_LOG_SQL, (orjson.dumps(rows),)).lastrowid
    written, order = state.written, state.order
    for project_id, obs_id, trace_id in rows:
        written[(project_id, obs_id)] = trace_id
        order.append(((project_id, obs_id), trace_id))
    state.numbered = state.numbered and last == state.high + len(order)


def committed(conn: Connection) -> None:
    """After ``conn``'s transaction committed: its own log rows join this process's memory
    without being read back. Optional (the next lookup reads them otherwise); never call it
    for a transaction that did not commit."""
    state: _TxnState | None = conn.info.pop(_STATE_KEY, None)
    if state is None or not state.order or not state.numbered:
        return
    tail = state.tail
    with tail.lock:
        if tail.last_seq != state.high:  # read meanwhile (another thread), or fallen behind
            return
        entries, seq = tail.entries, state.high
        for ref, trace_id in state.order:
            seq += 1
            entries[ref] = (trace_id, seq)
        tail.last_seq = seq


def pending(engine: Engine) -> int:
    """How many ids this process holds in memory (merged ones not yet dropped included)."""
    tail = tail_of(engine)
    return len(tail.entries) + len(tail.older)


def merge_due(engine: Engine, at: int | None = None) -> bool:
    """Whether a generation waits to be merged, or ``at`` (``MERGE_AT``) ids would make one."""
    tail = tail_of(engine)
    return bool(tail.older) or len(tail.entries) >= (at or MERGE_AT)


def maintain(engine: Engine, at: int | None = None) -> None:
    """Drop the older generation once the log is merged past it; make the ids in memory the
    older generation once there are ``at`` (``MERGE_AT``) of them and none is waiting. Cheap
    under the lock: the memory freed is freed by the caller's thread, after it."""
    tail = tail_of(engine)
    dead: dict[EntityRef, Entry] = {}
    with tail.lock:
        if tail.older and tail.merged_upto >= tail.older_upto:
            dead, tail.older = tail.older, {}
        if not tail.older and tail.entries and len(tail.entries) >= (at or MERGE_AT):
            tail.older, tail.entries, tail.older_upto = tail.entries, {}, tail.last_seq
    dead.clear()


def merge(
    engine: Engine,
    hold: Callable[[], AbstractContextManager[Any]] = nullcontext,
    *,
    at: int | None = None,
    chunk: int | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Merge the older generation of ids into ``observation_ids``, making one of the ids in
    memory first if there are at least ``at`` (``MERGE_AT``); the ids merged.

    ``chunk`` ids (``MERGE_CHUNK``) per transaction, each holding ``hold`` (the writers' lock);
    the sort and everything else happen outside it. Safe beside writers and other merges, and
    to stop anywhere (``stopping`` is checked between transactions; 0 is returned): an id is
    never written over a newer one (``seq``), and log rows are deleted only once all their ids
    are in ``observation_ids``. Across processes the caller lets one merge at a time (the
    writer takes a turn lock), else the same ids are written twice.
    """
    tail = tail_of(engine)
    if not tail.merging.acquire(blocking=False):
        return 0
    try:
        with engine.connect() as conn:
            catch_up(conn)
            conn.rollback()
            maintain(engine, at)
            with tail.lock:
                older, upto, merged = tail.older, tail.older_upto, tail.merged_upto
            if not older:
                return 0
            # Sorted by project, then id: strings sort fast, tuples of them do not.
            by_project: dict[str, list[str]] = defaultdict(list)
            for (project_id, obs_id), (_, seq) in older.items():
                if seq > merged:  # the others are merged already, or newer ones were
                    by_project[project_id].append(obs_id)
            size = chunk or MERGE_CHUNK
            done = 0
            for project_id in sorted(by_project):
                ids = by_project[project_id]
                ids.sort()
                for start in range(0, len(ids), size):
                    if stopping():
                        return 0
                    params: list[Any] = []
                    for obs_id in ids[start : start + size]:
                        trace_id, seq = older[(project_id, obs_id)]
                        params += (project_id, packed(obs_id), packed(trace_id), seq)
                    values = ", ".join(["(?, ?, ?, ?)"] * (len(params) // 4))
                    with hold(), conn.begin():
                        conn.exec_driver_sql(_MERGE_SQL.format(values=values), tuple(params))
                    done += len(params) // 4
            with hold(), conn.begin():
                conn.exec_driver_sql("DELETE FROM observation_id_log WHERE seq <= ?", (upto,))
                conn.exec_driver_sql(
                    "INSERT INTO observation_id_merge (id, merged_upto) VALUES (1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET merged_upto = "
                    "max(merged_upto, excluded.merged_upto)",
                    (upto,),
                )
            catch_up(conn)
            conn.rollback()
        maintain(engine)  # drops the generation just merged
        return done
    finally:
        tail.merging.release()
