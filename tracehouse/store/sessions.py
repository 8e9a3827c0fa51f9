"""Session queries: filtered pages of sessions, one session with its traces."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from .filters import FilterColumn, compile_conditions
from .schema import sessions, traces

s, t = sessions, traces


@cache
def session_filter_columns() -> dict[str, FilterColumn]:
    """The columns conditions on session lists may name."""
    return {
        "id": FilterColumn(s.c.id, "string"),
        "createdAt": FilterColumn(s.c.created_at, "datetime"),
        "environment": FilterColumn(s.c.environment, "string"),
        "bookmarked": FilterColumn(s.c.bookmarked, "boolean"),
        "public": FilterColumn(s.c.public, "boolean"),
    }


def list_sessions(
    conn: Connection, project_id: str, conditions: list[dict[str, Any]], *, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of sessions, newest first, and the number of matching sessions."""
    where = [s.c.project_id == project_id] + compile_conditions(
        conditions, session_filter_columns(), dialect=conn.dialect.name
    )
    total = conn.execute(select(func.count()).select_from(s).where(*where)).scalar_one()
    stmt = (
        select(s)
        .where(*where)
        .order_by(s.c.created_at.desc(), s.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()], int(total)


def get_session(conn: Connection, project_id: str, session_id: str) -> dict[str, Any] | None:
    stmt = select(s).where(s.c.project_id == project_id, s.c.id == session_id)
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None


def traces_of_session(conn: Connection, project_id: str, session_id: str) -> list[dict[str, Any]]:
    """Every trace of the session, oldest first (this route does not paginate them)."""
    stmt = (
        select(t)
        .where(t.c.project_id == project_id, t.c.session_id == session_id)
        .order_by(t.c.timestamp, t.c.id)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]
