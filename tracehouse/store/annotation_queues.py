"""Annotation queues, their items and their user assignments (SQL only).

A queue's score configs are read straight from ``score_configs``; a queue item points at a
trace, observation or session of the same project (see ``comments.object_exists``). Deleting a
queue deletes its items and assignments; scores that name the queue keep its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .schema import (
    annotation_queue_assignments,
    annotation_queue_items,
    annotation_queues,
    org_memberships,
    projects,
    score_configs,
    users,
)

QUEUE_OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION")
QUEUE_STATUSES = ("PENDING", "COMPLETED")

q, qi, qa = annotation_queues, annotation_queue_items, annotation_queue_assignments


def _insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: False when a unique key already held the values."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING tells the two apart on both backends (psycopg reports no rowcount here).
    return conn.execute(stmt.returning(table.c.project_id)).first() is not None


# -- queues ------------------------------------------------------------------------------------


def missing_score_configs(conn: Connection, project_id: str, ids: Sequence[str]) -> list[str]:
    """The ids (in the order given) that are not score configs of the project."""
    if not ids:
        return []
    found = set(
        conn.execute(
            select(score_configs.c.id).where(
                score_configs.c.project_id == project_id, score_configs.c.id.in_(set(ids))
            )
        ).scalars()
    )
    return [i for i in ids if i not in found]


def insert_queue(
    conn: Connection,
    *,
    project_id: str,
    queue_id: str,
    name: str,
    description: str | None,
    score_config_ids: list[str],
    now: datetime,
) -> bool:
    """False (and nothing written) when the project already has a queue of that name."""
    return _insert_new(
        conn,
        q,
        {
            "project_id": project_id,
            "id": queue_id,
            "name": name,
            "description": description,
            "score_config_ids": score_config_ids,
            "created_at": now,
            "updated_at": now,
        },
    )


def get_queue(conn: Connection, project_id: str, queue_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(q).where(q.c.project_id == project_id, q.c.id == queue_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def list_queues(
    conn: Connection, project_id: str, *, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One numbered page of the project's queues (newest first) and the total count."""
    where = [q.c.project_id == project_id]
    total = conn.execute(select(func.count()).select_from(q).where(*where)).scalar_one()
    stmt = (
        select(q)
        .where(*where)
        .order_by(q.c.created_at.desc(), q.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()], int(total)


def delete_queue(conn: Connection, project_id: str, queue_id: str) -> bool:
    """Delete the queue with its items and assignments; False when there is no such queue."""
    conn.execute(delete(qi).where(qi.c.project_id == project_id, qi.c.queue_id == queue_id))
    conn.execute(delete(qa).where(qa.c.project_id == project_id, qa.c.queue_id == queue_id))
    done = conn.execute(delete(q).where(q.c.project_id == project_id, q.c.id == queue_id))
    return bool(done.rowcount)


# -- items -------------------------------------------------------------------------------------


def insert_item(
    conn: Connection,
    *,
    project_id: str,
    item_id: str,
    queue_id: str,
    object_id: str,
    object_type: str,
    status: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(qi).values(
            project_id=project_id,
            id=item_id,
            queue_id=queue_id,
            object_id=object_id,
            object_type=object_type,
            status=status,
            completed_at=now if status == "COMPLETED" else None,
            created_at=now,
            updated_at=now,
        )
    )


def get_item(
    conn: Connection, project_id: str, queue_id: str, item_id: str
) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(qi).where(
                qi.c.project_id == project_id, qi.c.queue_id == queue_id, qi.c.id == item_id
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def list_items(
    conn: Connection,
    project_id: str,
    queue_id: str,
    *,
    status: str | None,
    page: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """One numbered page of a queue's items (newest first) and the total count."""
    where = [qi.c.project_id == project_id, qi.c.queue_id == queue_id]
    if status is not None:
        where.append(qi.c.status == status)
    total = conn.execute(select(func.count()).select_from(qi).where(*where)).scalar_one()
    stmt = (
        select(qi)
        .where(*where)
        .order_by(qi.c.created_at.desc(), qi.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()], int(total)


def set_item_status(
    conn: Connection, project_id: str, queue_id: str, item_id: str, status: str, now: datetime
) -> None:
    """COMPLETED keeps the first completion time (or sets it); PENDING clears it."""
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "PENDING":
        values["completed_at"] = None
    else:
        values["completed_at"] = func.coalesce(qi.c.completed_at, now)
    conn.execute(
        update(qi)
        .where(qi.c.project_id == project_id, qi.c.queue_id == queue_id, qi.c.id == item_id)
        .values(**values)
    )


def delete_item(conn: Connection, project_id: str, queue_id: str, item_id: str) -> bool:
    done = conn.execute(
        delete(qi).where(
            qi.c.project_id == project_id, qi.c.queue_id == queue_id, qi.c.id == item_id
        )
    )
    return bool(done.rowcount)


# -- assignments -------------------------------------------------------------------------------


def is_project_member(conn: Connection, project_id: str, user_id: str) -> bool:
    """Whether the user exists and belongs to the organization that owns the project."""
    found = conn.execute(
        select(users.c.id)
        .join(org_memberships, org_memberships.c.user_id == users.c.id)
        .join(projects, projects.c.org_id == org_memberships.c.org_id)
        .where(users.c.id == user_id, projects.c.id == project_id)
        .limit(1)
    ).first()
    return found is not None


def user_exists(conn: Connection, user_id: str) -> bool:
    return conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is not None


def put_assignment(
    conn: Connection, project_id: str, queue_id: str, user_id: str, now: datetime
) -> None:
    """Assign the user to the queue (assigning twice is no change)."""
    _insert_new(
        conn,
        qa,
        {"project_id": project_id, "queue_id": queue_id, "user_id": user_id, "created_at": now},
    )


def delete_assignment(conn: Connection, project_id: str, queue_id: str, user_id: str) -> bool:
    done = conn.execute(
        delete(qa).where(
            qa.c.project_id == project_id, qa.c.queue_id == queue_id, qa.c.user_id == user_id
        )
    )
    return bool(done.rowcount)


def assigned_users(conn: Connection, project_id: str, queue_id: str) -> list[str]:
    return list(
        conn.execute(
            select(qa.c.user_id)
            .where(qa.c.project_id == project_id, qa.c.queue_id == queue_id)
            .order_by(qa.c.created_at, qa.c.user_id)
        ).scalars()
    )
