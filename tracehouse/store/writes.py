"""The merge-and-store step of the write path: events in, upserted rows out, in one transaction."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..domain.events import Event
from ..domain.merge import Record, decode_keys, encode_keys, merge_key
from ..domain.records import finalize_observation, finalize_score, finalize_trace
from .schema import TABLE_BY_KIND, sessions, traces

EntityRef = tuple[str, str]  # (project_id, entity id)

# Columns that are bookkeeping or derived, not merged fields.
_NOT_FIELDS = {"project_id", "id", "merge_keys", "created_at", "updated_at"}
_OBS_DERIVED = {
    "usage_details",
    "cost_details",
    "input_usage",
    "output_usage",
    "total_usage",
    "input_cost",
    "output_cost",
    "total_cost",
}
# Observation events carry what clients provided under these names; columns keep them apart
# from the final figures.
_OBS_PROVIDED = {"usage_details": "provided_usage_details", "cost_details": "provided_cost_details"}
_CHUNK = 400


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _row_to_fields(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in row.items() if k not in _NOT_FIELDS}
    if kind == "observation":
        for derived in _OBS_DERIVED:
            values.pop(derived, None)
        for field, column in _OBS_PROVIDED.items():
            values[field] = values.pop(column, None)
    return {k: v for k, v in values.items() if v is not None}


def _load(
    conn: Connection, kind: str, refs: Iterable[EntityRef]
) -> dict[EntityRef, dict[str, Any]]:
    table = TABLE_BY_KIND[kind]
    by_project: dict[str, list[str]] = defaultdict(list)
    for project_id, entity_id in refs:
        by_project[project_id].append(entity_id)
    found: dict[EntityRef, dict[str, Any]] = {}
    # `project_id = ? AND id IN (...)` walks the primary key; a row-value IN may not.
    for project_id, ids in by_project.items():
        for start in range(0, len(ids), _CHUNK):
            stmt = select(table).where(
                table.c.project_id == project_id, table.c.id.in_(ids[start : start + _CHUNK])
            )
            for row in conn.execute(stmt).mappings():
                found[(project_id, row["id"])] = dict(row)
    return found


def _lock(conn: Connection, refs: Iterable[tuple[str, str, str]]) -> None:
    """Serialize concurrent writers of the same entities (PostgreSQL; SQLite has one writer)."""
    if conn.dialect.name != "postgresql":
        return
    keys = sorted(
        {
            int.from_bytes(
                hashlib.blake2b("\x00".join(r).encode(), digest_size=8).digest(), "big", signed=True
            )
            for r in refs
        }
    )
    if keys:
        conn.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(k)) FROM "
                "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS s"
            ),
            {"keys": keys},
        )


class _Merger:
    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.stored: dict[str, dict[EntityRef, dict[str, Any]]] = {}
        self.records: dict[str, dict[EntityRef, Record]] = defaultdict(dict)

    def merge(self, kind: str, grouped: dict[EntityRef, list[Event]]) -> None:
        stored = _load(self.conn, kind, [r for r in grouped if r not in self.records[kind]])
        self.stored.setdefault(kind, {}).update(stored)
        for ref, events in grouped.items():
            record = self.records[kind].get(ref)
            if record is None:
                row = stored.get(ref)
                record = (
                    Record(kind, _row_to_fields(kind, row), decode_keys(row["merge_keys"]))
                    if row
                    else Record(kind)
                )
                self.records[kind][ref] = record
            for event in sorted(events, key=merge_key):
                record.apply(event)

    def rows(self, kind: str) -> list[dict[str, Any]]:
        out = []
        stored = self.stored.get(kind, {})
        for (project_id, entity_id), record in self.records[kind].items():
            values = record.values
            derived: dict[str, Any] = {}
            if kind == "trace":
                finalize_trace(values)
            elif kind == "score":
                finalize_score(values)
            else:
                derived = finalize_observation(values)
            row: dict[str, Any] = {c.name: None for c in TABLE_BY_KIND[kind].columns}
            row.update(values)
            if kind == "observation":
                for field, column in _OBS_PROVIDED.items():
                    row[column] = values.get(field) or None
                row.update(derived)
            previous = stored.get((project_id, entity_id))
            row.update(
                project_id=project_id,
                id=entity_id,
                merge_keys=encode_keys(record.keys),
                created_at=previous["created_at"] if previous else self.now,
                updated_at=self.now,
            )
            out.append(row)
        return out


def _fill_observation_gaps(
    records: dict[EntityRef, Record], first_seen: dict[EntityRef, datetime]
) -> None:
    """Give update-only observations a start time and trace id, as weak values a create replaces."""
    for ref, record in records.items():
        weak = (0, first_seen[ref].strftime("%Y-%m-%dT%H:%M:%S.%f"), 0)
        if record.values.get("start_time") is None:
            record.values["start_time"] = first_seen[ref]
            record.keys["start_time"] = weak
        if record.values.get("trace_id") is None:
            record.values["trace_id"] = uuid.uuid4().hex
            record.keys["trace_id"] = weak
        record.values.setdefault("type", "SPAN")


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = _insert(conn, table)
    update_cols = {
        c.name: stmt.excluded[c.name]
        for c in table.columns
        if c.name not in ("project_id", "id", "created_at")
    }
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["project_id", "id"], set_=update_cols),
        list(rows),
    )


def apply_events(conn: Connection, batch: Sequence[tuple[str, Event]]) -> None:
    """Merge (project id, event) pairs into stored rows. Runs inside the caller's transaction."""
    now = datetime.now(UTC)
    grouped: dict[str, dict[EntityRef, list[Event]]] = defaultdict(lambda: defaultdict(list))
    first_seen: dict[EntityRef, datetime] = {}
    lock_refs: set[tuple[str, str, str]] = set()
    for project_id, event in batch:
        ref = (project_id, event.entity_id)
        grouped[event.kind][ref].append(event)
        lock_refs.add((event.kind, project_id, event.entity_id))
        if event.kind == "observation":
            seen = first_seen.get(ref)
            if seen is None or event.timestamp < seen:
                first_seen[ref] = event.timestamp
            trace_id = event.fields.get("trace_id")
            if trace_id:
                lock_refs.add(("trace", project_id, trace_id))
    _lock(conn, lock_refs)

    merger = _Merger(conn, now)
    if grouped.get("observation"):
        merger.merge("observation", grouped["observation"])
        _fill_observation_gaps(merger.records["observation"], first_seen)
        # Every observation implies its trace: a weak row that any trace-create overrides.
        for (project_id, _), record in merger.records["observation"].items():
            v = record.values
            grouped["trace"][(project_id, v["trace_id"])].append(
                Event(
                    kind="trace",
                    entity_id=v["trace_id"],
                    event_id="",
                    timestamp=v["start_time"],
                    is_create=True,
                    fields={
                        "timestamp": v["start_time"],
                        "environment": v.get("environment") or "default",
                    },
                    weak=True,
                )
            )
    for kind in ("trace", "score"):
        if grouped.get(kind):
            merger.merge(kind, grouped[kind])

    trace_rows = merger.rows("trace")
    _upsert(conn, traces, trace_rows)
    _upsert(conn, TABLE_BY_KIND["observation"], merger.rows("observation"))
    _upsert(conn, TABLE_BY_KIND["score"], merger.rows("score"))

    session_rows = {
        (r["project_id"], r["session_id"]): {
            "project_id": r["project_id"],
            "id": r["session_id"],
            "environment": r["environment"],
            "bookmarked": False,
            "public": False,
            "created_at": now,
        }
        for r in trace_rows
        if r.get("session_id")
    }
    if session_rows:
        stmt = _insert(conn, sessions).on_conflict_do_nothing(index_elements=["project_id", "id"])
        conn.execute(stmt, list(session_rows.values()))
