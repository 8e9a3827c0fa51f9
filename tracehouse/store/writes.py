"""The merge-and-store step of the write path: events in, upserted rows out, in one transaction."""

from __future__ import annotations

import hashlib
import itertools
import logging
import operator
import sqlite3
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Select, Table, Text, bindparam, func, select, text, true
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError

from tracehouse.memo import BoundedMemo

from ..domain.events import Event
from ..domain.merge import (
    MergeKey,
    Record,
    TimeText,
    decode_keys,
    encode_keys,
    merge_key,
    time_text,
)
from ..domain.records import finalize_observation, finalize_score, finalize_trace
from ..pricing.registry import ModelRegistry
from .prompts import prompt_ids
from .schema import TABLE_BY_KIND, sessions, traces
from .types import JsonText, UtcDateTime

try:  # compiled installs only (setup.py)
    from ._rows import holds_exactly, parameters
except ImportError:  # pure Python installs: the Python code below
    holds_exactly = None  # type: ignore[assignment]
    parameters = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

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
_PROVIDED = tuple(_OBS_PROVIDED)  # the provided fields, as the native check takes them
_CHUNK = 400


def _plain_names(names: Iterable[str]) -> tuple[str, ...]:
    """Column names as interned plain ``str``.

    SQLAlchemy hands out column names as ``quoted_name`` (a ``str`` subclass) and compiled
    parameter names as new strings. Row dicts are keyed by them and looked up with the field
    names of the code, which are interned literals: a lookup then finds an equal key that is
    not the same object, and compares the two strings (through the subclass's slower path),
    about 130 times per span written. Interned plain names make those lookups identity checks.
    """
    return tuple(sys.intern(str(name)) for name in names)


def _column_names(table: Table) -> tuple[str, ...]:
    return _plain_names(c.name for c in table.columns)


def _row_to_fields(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in row.items() if k not in _NOT_FIELDS}
    if kind == "observation":
        for derived in _OBS_DERIVED:
            values.pop(derived, None)
        for field, column in _OBS_PROVIDED.items():
            values[field] = values.pop(column, None)
    return {k: v for k, v in values.items() if v is not None}


# Single-key form of stored merge keys. Most rows were set by one event (an OTLP span arrives
# whole, once): every field they hold carries the same merge key. Such a row stores only that
# key, as the JSON string "<strength>|<time>|<rank>", or "=" when it is (1, the row's own
# anchor time, 0), as for OTLP spans and root-span traces; the fields it applies to are the
# ones the row holds (``_row_to_fields``), and the top-level keys of an object ``metadata``.
# It is written only when decoding it gives back exactly the record's keys, so a row holding
# a field that no key set (a default) or a key of a field it does not hold keeps the full form.
# Columns that are never merge fields under a key: filled by the write path or rules without
# one (tags are a union, public/bookmarked defaulted), or not fields at all (prompt_id).
_UNKEYED = {
    "observation": frozenset({"prompt_id"}),
    "trace": frozenset({"tags", "public", "bookmarked"}),
}
_ANCHOR = {"observation": "start_time", "trace": "timestamp"}
_SAME_AS_ANCHOR = "="


def _field_columns(kind: str) -> frozenset[str]:
    names = set(_column_names(TABLE_BY_KIND[kind])) - _NOT_FIELDS - _UNKEYED[kind]
    if kind == "observation":
        names -= _OBS_DERIVED | set(_OBS_PROVIDED.values())
        names |= set(_OBS_PROVIDED)
    return frozenset(names)


_KEYED_COLUMNS = {kind: _field_columns(kind) for kind in _UNKEYED}
# Every column of a kind's table, None: a written row starts as a copy of its kind's template.
_ROW_TEMPLATES = {
    kind: dict.fromkeys(_column_names(table)) for kind, table in TABLE_BY_KIND.items()
}


def _single_key(kind: str, keys: dict[str, MergeKey], values: dict[str, Any]) -> str | None:
    """The single-key form of ``keys`` for a row written from ``values`` (None: not possible).

    ``values`` are a record's values after finalising. Decoding (``_stored_keys``) gives every
    field the row holds (``_held_fields``) the one key, so the form is written only when those
    fields are exactly the keyed ones.
    """
    columns = _KEYED_COLUMNS.get(kind)
    if columns is None or not keys:
        return None
    all_keys = list(keys.values())
    key = all_keys[0]
    if all_keys.count(key) != len(all_keys):  # C-level; usually one and the same tuple
        return None
    same = None if holds_exactly is None else holds_exactly(keys, values, columns, _PROVIDED)
    if same is None:
        same = keys.keys() == _held_fields(values, columns)
    if not same:
        return None
    anchor = values.get(_ANCHOR[kind])
    if (
        key[0] == 1
        and key[2] == 0
        and isinstance(anchor, datetime)
        and anchor.tzinfo is UTC
        and key[1] == time_text(anchor)
    ):
        return _SAME_AS_ANCHOR
    return f"{key[0]}|{key[1]}|{key[2]}"


def _stored_keys(kind: str, stored: Any, fields: dict[str, Any]) -> dict[str, MergeKey]:
    """The merge keys of a stored row whose fields are ``fields`` (``_row_to_fields``)."""
    if not isinstance(stored, str):
        return decode_keys(stored)
    if stored == _SAME_AS_ANCHOR:
        key: MergeKey = (1, time_text(fields[_ANCHOR[kind]]), 0)
    else:
        strength, ts, rank = stored.split("|")
        key = (int(strength), ts, int(rank))
    return dict.fromkeys(_held_fields(fields, _KEYED_COLUMNS[kind]), key)


def _held_fields(values: dict[str, Any], columns: frozenset[str]) -> set[str]:
    """The merge fields a row written from ``values`` holds (what a single key applies to):
    its non-null ``columns`` (the provided usage and cost of an observation only when
    non-empty, as empty ones are stored as NULL), and the top-level keys of an object
    ``metadata``. Set operations: this runs for every row written as pure Python (compiled
    installs count these fields instead, ``_rows.holds_exactly``) and for stored rows."""
    held = {field for field, value in values.items() if value is not None}
    held &= columns
    for field in _PROVIDED:
        if field in held and not values[field]:
            held.discard(field)
    metadata = values.get("metadata")
    if "metadata" in held and isinstance(metadata, dict):
        held.update([f"metadata.{sub}" for sub in metadata])
    return held


def _load(
    conn: Connection, kind: str, refs: Iterable[EntityRef]
) -> dict[EntityRef, dict[str, Any]]:
    table = TABLE_BY_KIND[kind]
    found: dict[EntityRef, dict[str, Any]] = {}
    for project_id, ids in _id_chunks(refs):
        stored_ids = _stored_ids(conn, table, project_id, ids)
        if not stored_ids:  # the usual case: all new
            continue
        if conn.dialect.name == "postgresql":
            stmt = _pg_rows_by_id(table)
            params: dict[str, Any] = {"ids": stored_ids, "project_id": project_id}
        else:
            stmt = select(table).where(table.c.project_id == project_id, table.c.id.in_(stored_ids))
            params = {}
        for row in conn.execute(stmt, params).mappings():
            found[(project_id, row["id"])] = dict(row)
    return found


def _id_chunks(refs: Iterable[EntityRef]) -> Iterator[tuple[str, list[str]]]:
    """``refs`` as (project id, up to ``_CHUNK`` of its ids): statements by ids take one project
    at a time, since `project_id = ? AND id IN (...)` walks the primary key and a row-value IN
    may not."""
    by_project: dict[str, list[str]] = defaultdict(list)
    for project_id, entity_id in refs:
        by_project[project_id].append(entity_id)
    for project_id, ids in by_project.items():
        for start in range(0, len(ids), _CHUNK):
            yield project_id, ids[start : start + _CHUNK]


def _pg_rows_by_id(table: Table) -> Select[Any]:
    """PostgreSQL: the rows of ``table`` with the ids of the array parameter ``ids`` in the
    project ``project_id``, one primary-key probe per id (see ``_PG_ID_LOOKUP``)."""
    stmt = _PG_ROWS_BY_ID.get(table.name)
    if stmt is None:
        ids = (
            func.unnest(bindparam("ids", type_=postgresql.ARRAY(Text)))
            .table_valued("id")
            .render_derived()
            .alias("u")
        )
        row = (
            select(table)
            .where(table.c.project_id == bindparam("project_id"), table.c.id == ids.c.id)
            .limit(1)
            .lateral("o")
        )
        stmt = _PG_ROWS_BY_ID[table.name] = select(row).select_from(ids).join(row, true())
    return stmt


_PG_ROWS_BY_ID: dict[str, Select[Any]] = {}
_ID_LOOKUPS: dict[tuple[str, str, int], str] = {}
# PostgreSQL: one primary-key probe per id, whatever the planner knows. With `id IN (...)` (or
# `= ANY`) and no statistics on the table (a new database before its first ANALYZE, or autovacuum
# off), PostgreSQL read the whole project through another index and filtered it: 11-14 ms for
# 400 ids at 32,000 rows, growing with the table, against 0.9 ms this way. LIMIT 1 keeps the
# lateral subquery from being flattened into that join; the ids are one array parameter, so the
# statement's text never changes.
_PG_ID_LOOKUP = (
    "SELECT o.id FROM unnest(%s::text[]) AS u(id) CROSS JOIN LATERAL "
    "(SELECT id FROM {table} WHERE project_id = %s AND id = u.id LIMIT 1) AS o"
)


def _stored_ids(conn: Connection, table: Table, project_id: str, ids: list[str]) -> list[str]:
    """Which of ``ids`` (at most _CHUNK) the project has in ``table``: one statement of plain
    SQL (SQLAlchemy's compilation of an expanding IN cost more than the lookup itself). On
    SQLite the ids are padded to a power of two with repeats of the last one, so that few
    distinct statements exist and the driver's statement cache holds them; on PostgreSQL they
    are one array parameter (``_PG_ID_LOOKUP``)."""
    dialect = conn.dialect
    if dialect.name == "postgresql":
        lookup = _PG_ID_LOOKUP.format(table=table.name)
        return [row[0] for row in conn.exec_driver_sql(lookup, (ids, project_id))]
    size = 1 << (len(ids) - 1).bit_length()
    sql = _ID_LOOKUPS.get((dialect.name, table.name, size))
    if sql is None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"SELECT id FROM {table.name} WHERE project_id = {mark} AND id IN "
            f"({', '.join([mark] * size)})"
        )
        _ID_LOOKUPS[(dialect.name, table.name, size)] = sql
    params = (project_id, *ids, *([ids[-1]] * (size - len(ids))))
    return [row[0] for row in conn.exec_driver_sql(sql, params)]


# Entities hash into this many advisory locks. A transaction holds at most this many, however
# large its batch: PostgreSQL's shared lock table has max_locks_per_transaction (64) x
# max_connections (100) slots by default, and one lock per entity overflowed it ("out of shared
# memory") for a batch of a few thousand entities. Two entities sharing a lock only makes their
# writers wait for each other, which merging needs anyway.
LOCK_SLOTS = 1024
_LOCK_NAMESPACE = 0x7472_6163_0000_0000  # "trac" in the high bits: apart from others' locks


def _lock(conn: Connection, grouped: dict[str, dict[EntityRef, list[Event]]]) -> None:
    """Serialize concurrent writers of the same entities (PostgreSQL; SQLite has one writer):
    every entity of the batch, and the trace of every observation."""
    if conn.dialect.name != "postgresql":
        return
    refs: set[tuple[str, str, str]] = set()
    for kind, by_ref in grouped.items():
        for project_id, entity_id in by_ref:
            refs.add((kind, project_id, entity_id))
    for (project_id, _), events in grouped.get("observation", {}).items():
        for event in events:
            trace_id = event.fields.get("trace_id")
            if trace_id:
                refs.add(("trace", project_id, trace_id))
    keys = sorted(
        {
            _LOCK_NAMESPACE
            + int.from_bytes(hashlib.blake2b("\x00".join(r).encode(), digest_size=8).digest())
            % LOCK_SLOTS
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
    """Folds grouped events into records, on top of stored rows when it has a connection."""

    def __init__(
        self, conn: Connection | None, now: datetime, models: ModelRegistry | None
    ) -> None:
        self.conn = conn
        self.now = now
        self.models = models
        self.stored: dict[str, dict[EntityRef, dict[str, Any]]] = {}
        self.records: dict[str, dict[EntityRef, Record]] = defaultdict(dict)

    def merge(
        self,
        kind: str,
        grouped: dict[EntityRef, list[Event]],
        stored: dict[EntityRef, dict[str, Any]] | None = None,
    ) -> None:
        """Fold ``grouped`` into records, on top of the ``stored`` rows (loaded when None)."""
        if stored is None:
            stored = {}
            if self.conn is not None:
                refs = [r for r in grouped if r not in self.records[kind]]
                stored = _load(self.conn, kind, refs)
        self.stored.setdefault(kind, {}).update(stored)
        for ref, events in grouped.items():
            record = self.records[kind].get(ref)
            if record is None:
                row = stored.get(ref)
                if row:
                    fields = _row_to_fields(kind, row)
                    record = Record(kind, fields, _stored_keys(kind, row["merge_keys"], fields))
                else:
                    record = Record(kind)
                self.records[kind][ref] = record
            for event in sorted(events, key=merge_key) if len(events) > 1 else events:
                record.apply(event)

    def rows(self, kind: str) -> dict[EntityRef, dict[str, Any]]:
        out = {}
        stored = self.stored.get(kind, {})
        template = _ROW_TEMPLATES[kind]
        for (project_id, entity_id), record in self.records[kind].items():
            values = record.values
            derived: dict[str, Any] = {}
            if kind == "trace":
                finalize_trace(values)
            elif kind == "score":
                finalize_score(values)
            else:
                model = (
                    self.models.match(project_id, values.get("model"))
                    if self.models is not None
                    else None
                )
                derived = finalize_observation(values, model)
            row = dict(template)
            row.update(values)
            if kind == "observation":
                for field, column in _OBS_PROVIDED.items():
                    row[column] = values.get(field) or None
                row.update(derived)
            previous = stored.get((project_id, entity_id))
            row.update(
                project_id=project_id,
                id=entity_id,
                merge_keys=_single_key(kind, record.keys, values) or encode_keys(record.keys),
                created_at=previous["created_at"] if previous else self.now,
                updated_at=self.now,
            )
            out[(project_id, entity_id)] = row
        return out


def _fill_observation_gaps(
    records: dict[EntityRef, Record], first_seen: dict[EntityRef, datetime]
) -> None:
    """Give update-only observations a start time and trace id, as weak values a create replaces."""
    for ref, record in records.items():
        values = record.values
        if values.get("start_time") is None or values.get("trace_id") is None:
            weak = (0, time_text(first_seen[ref]), 0)
            if values.get("start_time") is None:
                values["start_time"] = first_seen[ref]
                record.keys["start_time"] = weak
            if values.get("trace_id") is None:
                values["trace_id"] = uuid.uuid4().hex
                record.keys["trace_id"] = weak
        values.setdefault("type", "SPAN")


# The upsert of each (dialect, table), compiled once: its SQL text, whether parameters are
# positional, the bound column names in order, and (position, converter) for the columns whose
# values need a conversion. Executing that SQL directly skips SQLAlchemy's per-row parameter
# handling, which cost more than the database's own work on a group commit of thousands of rows;
# the values go through the same conversions as the column types' own.
@dataclass(frozen=True)
class _UpsertSql:
    sql: str
    positional: bool
    names: tuple[str, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]
    copy: _CopyUpsert | None = None  # PostgreSQL: the same upsert for many rows at once
    null: Any = None  # what a NULL is bound as (SQLite: _SQLITE_NULL)

    @cached_property
    def pick(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """The values of ``names`` from a row, as a tuple (KeyError: a column is missing)."""
        getter = operator.itemgetter(*self.names)
        if len(self.names) == 1:
            return lambda row: (getter(row),)
        return getter

    def picked(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """The row's values in the order of ``names`` (a missing column: None)."""
        try:
            return self.pick(row)  # a row with every column (most rows): one C call
        except KeyError:
            return tuple(map(row.get, self.names))  # a missing column binds NULL

    def params(self, row: dict[str, Any]) -> list[Any]:
        picked = self.picked(row)
        if parameters is not None:  # ``params_of`` in C (compiled installs)
            encoded = parameters(picked, self.null, self.converters)
            if encoded is not None:
                return encoded
        return self.params_of(picked)

    def params_of(self, picked: tuple[Any, ...]) -> list[Any]:
        """The statement parameters of a row's ``picked`` values: NULLs as ``null``, each value
        of a column with a conversion converted."""
        null = self.null
        values = list(picked) if null is None else [null if v is None else v for v in picked]
        for i, convert in self.converters:
            value = values[i]
            if value is not null and value is not None:
                values[i] = convert(value)
        return values


_UPSERTS: dict[tuple[str, str, bool], _UpsertSql] = {}

# SQLite: a NULL parameter is bound as a float NaN, which SQLite stores as NULL (it has no NaN:
# binding one binds NULL). The sqlite3 module binds str, int, float and bytearray directly but
# sends every other value, None included, through its adapter registry: a key tuple, a dict
# lookup and a call, about 0.17 µs per NULL in a multi-row insert on the bench machine, and an
# observation row binds about 21 of them (bench/README.md). NaN takes sqlite3's direct path for
# floats. This object is the module's own, so no value a client sends is ever it.
_SQLITE_NULL = float("nan")


def _upsert_sql(conn: Connection, table: Table, update: bool) -> _UpsertSql:
    return _upsert_sql_for(conn.dialect, table, update)


def _on_conflict(stmt: Any, table: Table, update: bool) -> Any:
    """``stmt`` (a dialect's INSERT into ``table``) with the upsert's conflict clause: a row whose
    key exists is updated (``update``; all but its key and creation time) or kept."""
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=["project_id", "id"])
    update_cols = {
        c.name: stmt.excluded[c.name]
        for c in table.columns
        if c.name not in ("project_id", "id", "created_at")
    }
    return stmt.on_conflict_do_update(index_elements=["project_id", "id"], set_=update_cols)


def _upsert_sql_for(dialect: Dialect, table: Table, update: bool) -> _UpsertSql:
    """The insert of whole rows; on a conflict it updates (``update``) or keeps the row."""
    cached = _UPSERTS.get((dialect.name, table.name, update))
    if cached is not None:
        return cached
    stmt = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)
    compiled = _on_conflict(stmt, table, update).compile(dialect=dialect)
    names = _plain_names(compiled.positiontup or () if compiled.positional else compiled.binds)
    converters = []
    for i, name in enumerate(names):
        convert = _converter(table.c[name].type, dialect)
        if convert is not None:
            converters.append((i, convert))
    copy = _copy_upsert_for(dialect, table, update, names) if dialect.name == "postgresql" else None
    null = _SQLITE_NULL if dialect.name == "sqlite" else None
    cached = _UpsertSql(
        compiled.string, bool(compiled.positional), names, tuple(converters), copy, null
    )
    _UPSERTS[(dialect.name, table.name, update)] = cached
    return cached


# PostgreSQL: many rows are upserted through a staging table. ``executemany`` of the one-row
# upsert sends every row as a statement of its own, which PostgreSQL parses and plans every time
# (no server-side prepared statements, see ``store.db``): about 200 µs of the server's CPU per
# observation row. COPY into a temporary table of the same columns and one INSERT ... SELECT with
# the same ON CONFLICT clause costs a fifth of that (bench/README.md). The staging table is the
# connection's own (temporary), emptied at every commit (ON COMMIT DELETE ROWS: a truncation in
# place, so it never bloats; temporary tables are never vacuumed) and after every use, for a
# transaction that upserts into the same table twice. Its name carries a hash of the column
# list, so a connection that outlived a schema change never copies into a stale one. Rows must
# be distinct by key, as they are (every caller upserts one row per entity), since one INSERT
# may not update the same row twice.
_COPY_MIN_ROWS = 16  # fewer rows: the one-row statement, one round trip instead of six


@dataclass(frozen=True)
class _CopyUpsert:
    create: str
    copy: str
    merge: str
    clear: str
    types: tuple[str, ...] | None  # binary COPY: the PostgreSQL type of each column; None: text


# Binary COPY (a third of text COPY's client CPU in the harness) needs each column's type.
_PG_BINARY_TYPES = {
    "VARCHAR": "varchar",
    "TEXT": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "FLOAT": "float8",
    "INTEGER": "int4",
    "BOOLEAN": "bool",
}


def _copy_upsert_for(
    dialect: Dialect, table: Table, update: bool, names: tuple[str, ...]
) -> _CopyUpsert:
    digest = hashlib.blake2b(
        ",".join(f"{c.name}:{c.type.compile(dialect=dialect)}" for c in table.columns).encode(),
        digest_size=4,
    ).hexdigest()
    stage_name = f"th_stage_{table.name}_{digest}"
    stage = sa_table(stage_name, *[sa_column(name) for name in names])
    # In key order: concurrent writers whose batches share rows (a session of two traces)
    # then wait for each other's row locks in one order, never in a cycle.
    rows = select(*[stage.c[n] for n in names]).order_by(stage.c.project_id, stage.c.id)
    stmt = _on_conflict(postgresql.insert(table).from_select(list(names), rows), table, update)
    columns = ", ".join(names)
    types = tuple(_PG_BINARY_TYPES.get(table.c[n].type.compile(dialect=dialect), "") for n in names)
    binary = all(types)
    return _CopyUpsert(
        create=f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage_name} "
        f"(LIKE {table.name}) ON COMMIT DELETE ROWS",
        copy=f"COPY {stage_name} ({columns}) FROM STDIN" + (" (FORMAT BINARY)" if binary else ""),
        merge=str(stmt.compile(dialect=dialect)),
        clear=f"DELETE FROM {stage_name}",
        types=types if binary else None,
    )


# Databases (by URL) whose user may not create temporary tables (the TEMPORARY privilege,
# which PostgreSQL grants to everyone unless an administrator revoked it): their batches use
# the one-row upsert. Learnt from the first refusal, inside a savepoint, so that batch goes the
# one-row way too and nothing fails.
_NO_TEMP_TABLES: set[str] = set()
_INSUFFICIENT_PRIVILEGE = "42501"


def _pg_upsert_by_copy(conn: Connection, copy: _CopyUpsert, params: list[list[Any]]) -> bool:
    """Upsert many rows (distinct by key) through the connection's staging table, in the
    caller's transaction; False (nothing done) when the user may not create one."""
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute("SAVEPOINT th_stage")
        try:
            cursor.execute(copy.create)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT th_stage")
            log.warning(
                "the database user may not create temporary tables; rows are upserted one "
                "statement each, which is several times slower (%s)",
                exc,
            )
            _NO_TEMP_TABLES.add(_url(conn))
            return False
        cursor.execute("RELEASE SAVEPOINT th_stage")
        with cursor.copy(copy.copy) as stream:
            if copy.types is not None:
                stream.set_types(list(copy.types))
            for row in params:
                stream.write_row(row)
        cursor.execute(copy.merge)
        cursor.execute(copy.clear)
    return True


def _url(conn: Connection) -> str:
    return conn.engine.url.render_as_string(hide_password=True)


def _converter(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The conversion of a non-null value bound to a column of ``type_``; None: as it is.

    JSON and UTC-time columns get a direct function, used only where it gives what the column
    type's own bind processing gives; other types keep SQLAlchemy's processor.
    """
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    fast: Callable[[Any], Any] | None = None
    if isinstance(type_, JsonText):
        fast = type_.bind_converter(dialect)
        samples: tuple[Any, ...] = ({"a": [1, 2.5, "x"]}, "text", 3, [None, True], "x " * 500)
    elif isinstance(type_, UtcDateTime) and dialect.name == "sqlite":
        fast = _sqlite_utc_text
        samples = (datetime(2026, 1, 2, 3, 4, 5, 6, UTC), datetime(2026, 1, 2, 3, 4, 5))
    if fast is not None and all(fast(v) == processor(v) for v in samples):
        return fast
    return processor  # type: ignore[no-any-return]


def _sqlite_text_of_utc(value: datetime) -> str:
    merge_text = time_text(value)
    return merge_text[:10] + " " + merge_text[11:]


# Remembered: a batch writes the same times several times (its rows' created_at and updated_at
# are one and the same time).
_SQLITE_TEXTS_MAX = 4_096  # the times repeated within a batch; most span times are unique
_SQLITE_TEXTS: BoundedMemo[datetime, str] = BoundedMemo(_sqlite_text_of_utc, _SQLITE_TEXTS_MAX)


def _sqlite_utc_text_of(value: datetime) -> str:
    if value.tzinfo is UTC and value.year >= 1000:
        return _SQLITE_TEXTS[value]
    if value.tzinfo is not UTC and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00" of aware times


# Compiled installs write UTC times in C and call the function above for the others.
_sqlite_utc_text: Callable[[datetime], str] = (
    _sqlite_utc_text_of if TimeText is None else TimeText(" ", _sqlite_utc_text_of, True)
)


def _upsert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, update: bool = True
) -> None:
    """Insert rows with every column; a row that exists is updated, or kept (``update=False``)."""
    if not rows:
        return
    upsert = _upsert_sql(conn, table, update)
    _upsert_params(conn, upsert, [upsert.params(row) for row in rows])


def _upsert_params(conn: Connection, upsert: _UpsertSql, params: list[list[Any]]) -> None:
    if not params:
        return
    if (
        upsert.copy is not None
        and len(params) >= _COPY_MIN_ROWS
        and (not _NO_TEMP_TABLES or _url(conn) not in _NO_TEMP_TABLES)
        and _pg_upsert_by_copy(conn, upsert.copy, params)
    ):
        return
    if not upsert.positional:
        names = upsert.names
        conn.exec_driver_sql(upsert.sql, [dict(zip(names, p, strict=True)) for p in params])
        return
    if conn.dialect.name == "sqlite":
        _sqlite_upsert_in_chunks(conn, upsert.sql, len(upsert.names), params)
    else:
        conn.exec_driver_sql(upsert.sql, [tuple(p) for p in params])


# SQLite: many rows per statement. sqlite3's executemany steps row by row and hands the GIL
# back and forth for every row; under load each hand-back can wait for a thread that is
# decoding a request, so the single writer stalled. Chunks of 2^k rows keep the number of
# distinct statements small, so sqlite3's statement cache holds them all.
_MAX_ROWS_PER_STATEMENT = 512
_SQLITE_VARIABLE_LIMIT = 32766  # SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32
_MULTIROW_SQL: dict[tuple[str, int], str] = {}


def _sqlite_upsert_in_chunks(
    conn: Connection, sql: str, width: int, params: list[list[Any]]
) -> None:
    row = "(" + ", ".join(["?"] * width) + ")"
    if sql.count(row) != 1 or _sqlite_variable_limit(conn) // width < 2:
        conn.exec_driver_sql(sql, [tuple(p) for p in params])
        return
    for text_, values, _ in _sqlite_chunks(conn, sql, width, params):
        conn.exec_driver_sql(text_, values)


def _sqlite_chunks(
    conn: Connection, sql: str, width: int, params: list[list[Any]]
) -> Iterator[tuple[str, tuple[Any, ...], int]]:
    """The statements of a one-row insert ``sql`` (``width`` parameters) over many rows: their
    SQL text, parameters and number of rows (a power of two each, see above)."""
    row = "(" + ", ".join(["?"] * width) + ")"
    limit = max(1, _sqlite_variable_limit(conn) // width)
    most = 1 << (min(limit, _MAX_ROWS_PER_STATEMENT).bit_length() - 1)
    start = 0
    while start < len(params):
        size = min(most, 1 << ((len(params) - start).bit_length() - 1))
        text_ = _MULTIROW_SQL.get((sql, size))
        if text_ is None:
            text_ = _MULTIROW_SQL[(sql, size)] = sql.replace(row, ", ".join([row] * size))
        chunk = params[start : start + size]
        yield text_, tuple(itertools.chain.from_iterable(chunk)), size
        start += size


def _sqlite_variable_limit(conn: Connection) -> int:
    dbapi = conn.connection.dbapi_connection
    getlimit = getattr(dbapi, "getlimit", None)  # Python >= 3.11
    if getlimit is None:
        return 999  # the oldest SQLite default
    return min(int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)), _SQLITE_VARIABLE_LIMIT)


@dataclass
class PreparedBatch:
    """A batch of events merged among themselves, before any stored row is looked at.

    Most events create new entities (an OTLP span arrives whole, once), so the rows merged here
    are usually final; ``commit_prepared`` then only checks that and writes them. The expensive
    part, merging, pricing and encoding, happens here, outside the transaction and outside
    the lock that serialises writers.
    """

    now: datetime
    grouped: dict[str, dict[EntityRef, list[Event]]]
    first_seen: dict[EntityRef, datetime]
    rows: dict[str, dict[EntityRef, dict[str, Any]]]
    observation_params: list[list[Any]] | None = None
    # The trace rows' upsert parameters by trace (their packed values: Zstandard frames). A
    # trace merged again on top of its stored row has none here; it is encoded at the write.
    trace_params: dict[EntityRef, list[Any]] | None = None
    dialect: str | None = None


def _group(batch: Sequence[tuple[str, Event]]) -> PreparedBatch:
    grouped: dict[str, dict[EntityRef, list[Event]]] = defaultdict(lambda: defaultdict(list))
    first_seen: dict[EntityRef, datetime] = {}
    for project_id, event in batch:
        ref = (project_id, event.entity_id)
        grouped[event.kind][ref].append(event)
        if event.kind == "observation":
            seen = first_seen.get(ref)
            if seen is None or event.timestamp < seen:
                first_seen[ref] = event.timestamp
    return PreparedBatch(datetime.now(UTC), grouped, first_seen, {})


def _merge_all(
    prepared: PreparedBatch,
    merger: _Merger,
    stored_observations: dict[EntityRef, dict[str, Any]] | None = None,
) -> None:
    """Merge every kind of the batch (observations first: they imply their traces)."""
    grouped = prepared.grouped
    if grouped.get("observation"):
        merger.merge("observation", grouped["observation"], stored_observations)
        _fill_observation_gaps(merger.records["observation"], prepared.first_seen)
        _add_implied_traces(merger.records["observation"], grouped)
    for kind in ("trace", "score"):
        if grouped.get(kind):
            merger.merge(kind, grouped[kind])


def _add_implied_traces(
    records: dict[EntityRef, Record], grouped: dict[str, dict[EntityRef, list[Event]]]
) -> None:
    """Every observation implies its trace: a weak row that any trace-create overrides.

    Of a trace's implied events only the earliest (the first of equals) can win, as both of its
    fields keep their first value; so only that one is merged.
    """
    implied: dict[EntityRef, tuple[MergeKey, Event]] = {}
    for (project_id, _), record in records.items():
        v = record.values
        ref = (project_id, v["trace_id"])
        earlier = implied.get(ref)
        key = (0, time_text(v["start_time"]), 0)  # merge_key of the event below
        if earlier is not None and earlier[0] <= key:
            continue
        event = Event(
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
        implied[ref] = (key, event)
    traces_grouped = grouped["trace"]
    for ref, (_, event) in implied.items():
        traces_grouped[ref].append(event)


def prepare_events(
    batch: Sequence[tuple[str, Event]],
    models: ModelRegistry | None = None,
    dialect: Dialect | None = None,
) -> PreparedBatch:
    """Merge (project id, event) pairs among themselves, as if nothing were stored yet.

    Needs no connection; with ``dialect`` the observation rows are also encoded as statement
    parameters. ``commit_prepared`` finishes the job against the store.
    """
    prepared = _group(batch)
    merger = _Merger(None, prepared.now, models)
    _merge_all(prepared, merger)
    for kind in ("trace", "observation", "score"):
        prepared.rows[kind] = merger.rows(kind)
    if dialect is not None:
        upsert = _upsert_sql_for(dialect, TABLE_BY_KIND["observation"], True)
        prepared.observation_params = [
            upsert.params(row) for row in prepared.rows["observation"].values()
        ]
        upsert = _upsert_sql_for(dialect, traces, True)
        prepared.trace_params = {
            ref: upsert.params(row) for ref, row in prepared.rows["trace"].items()
        }
        prepared.dialect = dialect.name
    return prepared


def commit_prepared(
    conn: Connection, prepared: PreparedBatch, models: ModelRegistry | None = None
) -> None:
    """Store a prepared batch in the caller's transaction, merging with what is stored.

    New observations (the usual case) are written as prepared. If any observation of the batch
    is already stored, the whole batch is merged again on top of the stored rows. Traces and
    scores that exist are merged again one by one.
    """
    _lock(conn, prepared.grouped)
    observations = prepared.grouped.get("observation")
    # SQLite: the batch's observations are inserted as new rows first; the key rejects the
    # insert when one of them is stored, and only then are they looked up and merged.
    written = bool(observations) and _insert_new_observations(conn, prepared)
    stored_observations = (
        _load(conn, "observation", observations) if observations and not written else {}
    )
    if stored_observations:
        _merge_with_stored(conn, prepared, models, stored_observations)
        return
    merger = _Merger(conn, prepared.now, models)
    for kind in ("trace", "score"):
        grouped = prepared.grouped.get(kind)
        if not grouped:
            continue
        stored = _load(conn, kind, grouped)
        if stored:  # merged again on top of what is stored; the others stay as prepared
            merger.merge(kind, {ref: grouped[ref] for ref in stored}, stored)
            prepared.rows[kind].update(merger.rows(kind))
            if kind == "trace" and prepared.trace_params is not None:
                for ref in stored:
                    prepared.trace_params.pop(ref, None)
    if prepared.dialect == conn.dialect.name:
        _write_rows(
            conn, prepared, prepared.observation_params, prepared.trace_params, written=written
        )
    else:
        _write_rows(conn, prepared, None)


def _insert_new_observations(conn: Connection, prepared: PreparedBatch) -> bool:
    """SQLite: insert the batch's observations as new rows, as prepared; False when one of them
    is stored already (then none of them is kept).

    Most batches hold only new observations (an OTLP span arrives once). Looking their ids up
    before writing them cost a statement and a probe of the key per row under the writers'
    lock (``bench/README.md``); the insert probes the key anyway. A stored id makes the plain
    insert fail on the key: SQLite takes back the failing statement's rows and keeps the
    transaction, the rows of the statements before it are deleted again (they are this
    insert's own), and the caller looks the ids up and merges as before. Any other failure of
    the insert (a NOT NULL column) goes the same way and fails again where it did before.
    """
    params = prepared.observation_params
    if not params or prepared.dialect != "sqlite" or conn.dialect.name != "sqlite":
        return False
    upsert = _upsert_sql(conn, TABLE_BY_KIND["observation"], True)
    _link_prompts(conn, prepared, params)
    insert = _plain_insert(upsert.sql)
    done = 0
    try:
        for text_, values, size in _sqlite_chunks(conn, insert, len(upsert.names), params):
            conn.exec_driver_sql(text_, values)
            done += size
    except IntegrityError:
        # The parameters are in the order of the rows (``prepare_events``).
        inserted = itertools.islice(prepared.rows["observation"], done)
        for project_id, ids in _id_chunks(inserted):
            marks = ", ".join(["?"] * len(ids))
            conn.exec_driver_sql(
                f"DELETE FROM {TABLE_BY_KIND['observation'].name} "
                f"WHERE project_id = ? AND id IN ({marks})",
                (project_id, *ids),
            )
        return False
    return True


def _plain_insert(upsert_sql: str) -> str:
    """An upsert's SQL without its conflict clause: the same parameters, failing on a stored key."""
    insert, _, _ = upsert_sql.partition(" ON CONFLICT ")
    return insert


def _merge_with_stored(
    conn: Connection,
    prepared: PreparedBatch,
    models: ModelRegistry | None,
    stored_observations: dict[EntityRef, dict[str, Any]],
) -> None:
    # Drop the implied trace events of the first pass: they are derived again below (a trace
    # that only the first pass implied, e.g. a made-up trace id, is dropped as a whole).
    traces_grouped = prepared.grouped.get("trace", {})
    for ref, events in list(traces_grouped.items()):
        kept = [e for e in events if not e.weak]
        if kept:
            traces_grouped[ref] = kept
        else:
            del traces_grouped[ref]
    merger = _Merger(conn, prepared.now, models)
    _merge_all(prepared, merger, stored_observations)
    for kind in ("trace", "observation", "score"):
        prepared.rows[kind] = merger.rows(kind)
    _write_rows(conn, prepared, None)


def _write_rows(
    conn: Connection,
    prepared: PreparedBatch,
    observation_params: list[list[Any]] | None,
    trace_params: dict[EntityRef, list[Any]] | None = None,
    *,
    written: bool = False,
) -> None:
    """Write the prepared rows; ``observation_params``, ``trace_params``: parameters encoded
    before the transaction for this connection's dialect (a trace missing from
    ``trace_params`` is encoded here); ``written``: the observations are inserted already
    (``_insert_new_observations``)."""
    trace_rows = list(prepared.rows["trace"].values())
    upsert = _upsert_sql(conn, traces, True)
    encoded = trace_params or {}
    _upsert_params(
        conn,
        upsert,
        [encoded.get(ref) or upsert.params(row) for ref, row in prepared.rows["trace"].items()],
    )
    if not written:
        _link_prompts(conn, prepared, observation_params)
        if observation_params is not None:
            upsert = _upsert_sql(conn, TABLE_BY_KIND["observation"], True)
            _upsert_params(conn, upsert, observation_params)
        else:
            rows = list(prepared.rows["observation"].values())
            _upsert(conn, TABLE_BY_KIND["observation"], rows)
    _upsert(conn, TABLE_BY_KIND["score"], list(prepared.rows["score"].values()))
    _upsert(conn, sessions, session_rows(trace_rows, prepared.now), update=False)


def session_rows(trace_rows: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The sessions that trace rows name, one row each (kept as they are if stored)."""
    rows = {
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
    return list(rows.values())


def _link_prompts(
    conn: Connection, prepared: PreparedBatch, observation_params: list[list[Any]] | None
) -> None:
    """Give observations that name a prompt version the id of that version (``promptId``),
    when the project has it; one query per batch that links prompts at all."""
    rows = prepared.rows["observation"]
    wanted = {
        (project_id, row["prompt_name"], row["prompt_version"])
        for (project_id, _), row in rows.items()
        if row.get("prompt_name") is not None and row.get("prompt_version") is not None
    }
    if not wanted:
        return
    ids = prompt_ids(conn, wanted)
    upsert = _upsert_sql(conn, TABLE_BY_KIND["observation"], True)
    position = upsert.names.index("prompt_id") if observation_params is not None else None
    for i, ((project_id, _), row) in enumerate(rows.items()):
        if row.get("prompt_name") is None:
            continue
        prompt_id = ids.get((project_id, row["prompt_name"], row["prompt_version"]))
        row["prompt_id"] = prompt_id
        if position is not None and observation_params is not None:
            observation_params[i][position] = upsert.null if prompt_id is None else prompt_id


def apply_events(
    conn: Connection, batch: Sequence[tuple[str, Event]], models: ModelRegistry | None = None
) -> None:
    """Merge (project id, event) pairs into stored rows. Runs inside the caller's transaction.

    ``models`` prices observations that name a model (None: usage and cost as provided).
    """
    commit_prepared(conn, prepare_events(batch, models, conn.dialect), models)
