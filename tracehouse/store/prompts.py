"""Prompt versions, labels, dependencies and the per-project change counter (SQL only)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from tracehouse.domain.prompts import LATEST, Reference

from .filters import json_array_contains
from .schema import prompt_dependencies, prompt_generations, prompt_labels, prompts


@dataclass
class PromptVersion:
    """One stored version with the labels that currently point at it."""

    id: str
    project_id: str
    name: str
    version: int
    type: str
    prompt: Any
    config: Any
    tags: list[str]
    labels: list[str]
    commit_message: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


def _version(row: Any, labels: list[str]) -> PromptVersion:
    return PromptVersion(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        version=row.version,
        type=row.type,
        prompt=row.prompt,
        config=row.config,
        tags=list(row.tags or []),
        labels=labels,
        commit_message=row.commit_message,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _upsert(conn: Connection, table: Any) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


# --- the change counter ----------------------------------------------------------------------


def bump_generation(conn: Connection, project_id: str) -> None:
    """Raise the project's prompt counter. Done first in every prompt change: on PostgreSQL the
    row lock it takes also serializes concurrent changes of one project (version numbers)."""
    stmt = _upsert(conn, prompt_generations).values(project_id=project_id, generation=1)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["project_id"],
            set_={"generation": prompt_generations.c.generation + 1},
        )
    )


def generation(conn: Connection, project_id: str) -> int:
    value = conn.execute(
        select(prompt_generations.c.generation).where(prompt_generations.c.project_id == project_id)
    ).scalar()
    return int(value or 0)


class SqliteGenerationReader:
    """Reads prompt counters on one SQLite connection of its own, with a plain DB-API query.

    For the hot read of ``GET /api/public/v2/prompts/{name}``: a few microseconds instead of
    the tens that building and running a Core statement on a pooled connection cost. Only for
    the thread that first used it (the event loop); other threads get None and read the usual
    way. The connection runs no transaction between reads (a SELECT in autocommit), so it never
    holds an old snapshot of the database.
    """

    _SQL = "SELECT generation FROM prompt_generations WHERE project_id = ?"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None
        self._owner: int | None = None

    def read(self, project_id: str) -> int | None:
        if self._owner is None:
            self._owner = threading.get_ident()
            self._conn = self._engine.raw_connection()
        elif self._owner != threading.get_ident():
            return None
        row = self._conn.driver_connection.execute(self._SQL, (project_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._owner = None


# --- reads -----------------------------------------------------------------------------------


def labels_by_version(conn: Connection, project_id: str, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    rows = conn.execute(
        select(prompt_labels.c.version, prompt_labels.c.label)
        .where(prompt_labels.c.project_id == project_id, prompt_labels.c.name == name)
        .order_by(prompt_labels.c.label)
    )
    for version, label in rows:
        out.setdefault(version, []).append(label)
    return out


def _labels_of(conn: Connection, project_id: str, name: str, version: int) -> list[str]:
    rows = conn.execute(
        select(prompt_labels.c.label)
        .where(
            prompt_labels.c.project_id == project_id,
            prompt_labels.c.name == name,
            prompt_labels.c.version == version,
        )
        .order_by(prompt_labels.c.label)
    )
    return [label for (label,) in rows]


def get_version(conn: Connection, project_id: str, name: str, version: int) -> PromptVersion | None:
    row = conn.execute(
        select(prompts).where(
            prompts.c.project_id == project_id,
            prompts.c.name == name,
            prompts.c.version == version,
        )
    ).first()
    return None if row is None else _version(row, _labels_of(conn, project_id, name, version))


def version_with_label(conn: Connection, project_id: str, name: str, label: str) -> int | None:
    value = conn.execute(
        select(prompt_labels.c.version).where(
            prompt_labels.c.project_id == project_id,
            prompt_labels.c.name == name,
            prompt_labels.c.label == label,
        )
    ).scalar()
    return None if value is None else int(value)


def get_by_label(conn: Connection, project_id: str, name: str, label: str) -> PromptVersion | None:
    version = version_with_label(conn, project_id, name, label)
    return None if version is None else get_version(conn, project_id, name, version)


def versions_of(conn: Connection, project_id: str, name: str) -> list[PromptVersion]:
    """Every version of a name, oldest first."""
    labels = labels_by_version(conn, project_id, name)
    rows = conn.execute(
        select(prompts)
        .where(prompts.c.project_id == project_id, prompts.c.name == name)
        .order_by(prompts.c.version)
    )
    return [_version(row, labels.get(row.version, [])) for row in rows]


def by_ids(conn: Connection, project_id: str, ids: Iterable[str]) -> list[PromptVersion]:
    wanted = list(set(ids))
    if not wanted:
        return []
    rows = conn.execute(
        select(prompts).where(prompts.c.project_id == project_id, prompts.c.id.in_(wanted))
    ).all()
    return [_version(row, _labels_of(conn, project_id, row.name, row.version)) for row in rows]


def max_version(conn: Connection, project_id: str, name: str) -> int:
    value = conn.execute(
        select(func.max(prompts.c.version)).where(
            prompts.c.project_id == project_id, prompts.c.name == name
        )
    ).scalar()
    return int(value or 0)


def prompt_ids(
    conn: Connection, versions: Iterable[tuple[str, str, int]]
) -> dict[tuple[str, str, int], str]:
    """Ids of (project, name, version) triples that exist."""
    wanted = set(versions)
    out: dict[tuple[str, str, int], str] = {}
    by_project: dict[str, set[str]] = {}
    for project_id, name, _ in wanted:
        by_project.setdefault(project_id, set()).add(name)
    for project_id, names in by_project.items():
        rows = conn.execute(
            select(prompts.c.name, prompts.c.version, prompts.c.id).where(
                prompts.c.project_id == project_id, prompts.c.name.in_(names)
            )
        )
        for name, version, prompt_id in rows:
            if (project_id, name, version) in wanted:
                out[(project_id, name, version)] = prompt_id
    return out


@dataclass
class ListFilters:
    name: str | None = None
    label: str | None = None
    tag: str | None = None
    from_updated_at: datetime | None = None
    to_updated_at: datetime | None = None


def _version_conditions(conn: Connection, project_id: str, f: ListFilters) -> list[Any]:
    cond: list[Any] = [prompts.c.project_id == project_id]
    if f.name is not None:
        cond.append(prompts.c.name == f.name)
    if f.tag is not None:
        cond.append(json_array_contains(conn.dialect.name, prompts.c.tags, f.tag))
    if f.from_updated_at is not None:
        cond.append(prompts.c.updated_at >= f.from_updated_at)
    if f.to_updated_at is not None:
        cond.append(prompts.c.updated_at < f.to_updated_at)
    if f.label is not None:
        cond.append(
            select(prompt_labels.c.label)
            .where(
                prompt_labels.c.project_id == prompts.c.project_id,
                prompt_labels.c.name == prompts.c.name,
                prompt_labels.c.version == prompts.c.version,
                prompt_labels.c.label == f.label,
            )
            .exists()
        )
    return cond


def list_names(
    conn: Connection, project_id: str, f: ListFilters, page: int, limit: int
) -> tuple[list[tuple[str, list[PromptVersion]]], int]:
    """Names with at least one version matching the filters (by name), each with those versions
    (oldest first); and how many names match in all."""
    cond = _version_conditions(conn, project_id, f)
    total = conn.execute(select(func.count(func.distinct(prompts.c.name))).where(*cond)).scalar()
    names = [
        n
        for (n,) in conn.execute(
            select(prompts.c.name)
            .where(*cond)
            .group_by(prompts.c.name)
            .order_by(prompts.c.name)
            .limit(limit)
            .offset((page - 1) * limit)
        )
    ]
    if not names:
        return [], int(total or 0)
    label_rows = conn.execute(
        select(prompt_labels.c.name, prompt_labels.c.version, prompt_labels.c.label)
        .where(prompt_labels.c.project_id == project_id, prompt_labels.c.name.in_(names))
        .order_by(prompt_labels.c.label)
    )
    labels: dict[tuple[str, int], list[str]] = {}
    for name, version, label in label_rows:
        labels.setdefault((name, version), []).append(label)
    rows = conn.execute(
        select(prompts)
        .where(*cond, prompts.c.name.in_(names))
        .order_by(prompts.c.name, prompts.c.version)
    )
    grouped: dict[str, list[PromptVersion]] = {n: [] for n in names}
    for row in rows:
        grouped[row.name].append(_version(row, labels.get((row.name, row.version), [])))
    return [(n, grouped[n]) for n in names], int(total or 0)


# --- writes ----------------------------------------------------------------------------------


def insert_version(conn: Connection, v: PromptVersion) -> None:
    conn.execute(
        insert(prompts).values(
            project_id=v.project_id,
            id=v.id,
            name=v.name,
            version=v.version,
            type=v.type,
            prompt=v.prompt,
            config=v.config,
            tags=v.tags,
            commit_message=v.commit_message,
            created_by=v.created_by,
            created_at=v.created_at,
            updated_at=v.updated_at,
        )
    )


def set_tags(conn: Connection, project_id: str, name: str, tags: list[str], now: datetime) -> None:
    """Tags are the same on every version of a name; versions whose tags change are touched."""
    for row in conn.execute(
        select(prompts.c.id, prompts.c.tags).where(
            prompts.c.project_id == project_id, prompts.c.name == name
        )
    ).all():
        if list(row.tags or []) != tags:
            conn.execute(
                update(prompts)
                .where(prompts.c.project_id == project_id, prompts.c.id == row.id)
                .values(tags=tags, updated_at=now)
            )


def touch(
    conn: Connection, project_id: str, name: str, versions: Iterable[int], now: datetime
) -> None:
    wanted = list(set(versions))
    if wanted:
        conn.execute(
            update(prompts)
            .where(
                prompts.c.project_id == project_id,
                prompts.c.name == name,
                prompts.c.version.in_(wanted),
            )
            .values(updated_at=now)
        )


def point_label(conn: Connection, project_id: str, name: str, label: str, version: int) -> None:
    """Point ``label`` of ``name`` at ``version`` (moving it off the version it was on)."""
    stmt = _upsert(conn, prompt_labels).values(
        project_id=project_id, name=name, label=label, version=version
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["project_id", "name", "label"], set_={"version": version}
        )
    )


def drop_labels(
    conn: Connection, project_id: str, name: str, version: int, keep: Sequence[str]
) -> list[str]:
    """Remove from ``version`` every label not in ``keep`` (nor ``latest``); returns those removed."""
    current = _labels_of(conn, project_id, name, version)
    gone = [label for label in current if label not in keep and label != LATEST]
    if gone:
        conn.execute(
            delete(prompt_labels).where(
                prompt_labels.c.project_id == project_id,
                prompt_labels.c.name == name,
                prompt_labels.c.label.in_(gone),
            )
        )
    return gone


def insert_dependencies(
    conn: Connection, project_id: str, parent_id: str, refs: Iterable[Reference]
) -> None:
    rows = [
        {
            "project_id": project_id,
            "parent_id": parent_id,
            "child_name": r.name,
            "child_label": r.label,
            "child_version": r.version,
        }
        for r in refs
    ]
    if rows:
        conn.execute(insert(prompt_dependencies), rows)


@dataclass(frozen=True)
class Dependent:
    """A stored version that references ``child_name`` (by label or version)."""

    parent_id: str
    parent_name: str
    parent_version: int
    child_label: str | None
    child_version: int | None


def dependents(conn: Connection, project_id: str, child_name: str) -> list[Dependent]:
    rows = conn.execute(
        select(
            prompt_dependencies.c.parent_id,
            prompts.c.name,
            prompts.c.version,
            prompt_dependencies.c.child_label,
            prompt_dependencies.c.child_version,
        )
        .join(
            prompts,
            and_(
                prompts.c.project_id == prompt_dependencies.c.project_id,
                prompts.c.id == prompt_dependencies.c.parent_id,
            ),
        )
        .where(
            prompt_dependencies.c.project_id == project_id,
            prompt_dependencies.c.child_name == child_name,
        )
    )
    return [Dependent(*row) for row in rows]


def delete_versions(
    conn: Connection, project_id: str, name: str, versions: list[PromptVersion]
) -> None:
    """Delete versions with their labels and dependency rows; ``latest`` moves to the newest
    version left."""
    ids = [v.id for v in versions]
    numbers = [v.version for v in versions]
    conn.execute(
        delete(prompt_dependencies).where(
            prompt_dependencies.c.project_id == project_id,
            prompt_dependencies.c.parent_id.in_(ids),
        )
    )
    conn.execute(
        delete(prompt_labels).where(
            prompt_labels.c.project_id == project_id,
            prompt_labels.c.name == name,
            prompt_labels.c.version.in_(numbers),
        )
    )
    conn.execute(delete(prompts).where(prompts.c.project_id == project_id, prompts.c.id.in_(ids)))
    newest = max_version(conn, project_id, name)
    if newest:
        point_label(conn, project_id, name, LATEST, newest)
