"""Comments on traces, observations, sessions and prompt versions (SQL only).

``object_exists`` also serves annotation queue items, which point at the same kinds of objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from .schema import comments, observations, prompts, sessions, traces

COMMENT_OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION", "PROMPT")

# The table holding each kind of object a comment or a queue item may point at (by id).
_OBJECT_TABLES = {
    "TRACE": traces,
    "OBSERVATION": observations,
    "SESSION": sessions,
    "PROMPT": prompts,  # a prompt version's id
}


def object_exists(conn: Connection, project_id: str, object_type: str, object_id: str) -> bool:
    """Whether the project has a ``object_type`` (TRACE|OBSERVATION|SESSION|PROMPT) of that id."""
    table = _OBJECT_TABLES[object_type]
    found = conn.execute(
        select(table.c.id).where(table.c.project_id == project_id, table.c.id == object_id).limit(1)
    ).first()
    return found is not None


def insert_comment(
    conn: Connection,
    *,
    project_id: str,
    comment_id: str,
    object_type: str,
    object_id: str,
    content: str,
    author_user_id: str | None,
    now: datetime,
) -> None:
    conn.execute(
        insert(comments).values(
            project_id=project_id,
            id=comment_id,
            object_type=object_type,
            object_id=object_id,
            content=content,
            author_user_id=author_user_id,
            created_at=now,
            updated_at=now,
        )
    )


def get_comment(conn: Connection, project_id: str, comment_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(comments).where(comments.c.project_id == project_id, comments.c.id == comment_id)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def list_comments(
    conn: Connection,
    project_id: str,
    *,
    object_type: str | None,
    object_id: str | None,
    author_user_id: str | None,
    page: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """One numbered page of the project's comments (newest first) and the total count."""
    where = [comments.c.project_id == project_id]
    if object_type is not None:
        where.append(comments.c.object_type == object_type)
    if object_id is not None:
        where.append(comments.c.object_id == object_id)
    if author_user_id is not None:
        where.append(comments.c.author_user_id == author_user_id)
    total = conn.execute(select(func.count()).select_from(comments).where(*where)).scalar_one()
    stmt = (
        select(comments)
        .where(*where)
        .order_by(comments.c.created_at.desc(), comments.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()], int(total)
