"""Score queries: filtered lists (numbered pages or keyset cursor), one score, deletion.

Every list row carries the score's columns plus its trace's ``user_id``, ``tags``,
``environment`` and ``session_id`` (as ``trace_*``; all NULL when the score has no stored trace),
so trace properties can be both filtered on and returned.
"""

from __future__ import annotations

import operator as op
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.engine import Connection

from .filters import FilterColumn, compile_conditions
from .schema import scores, traces

s, t = scores, traces

_SCORE_WITH_TRACE = s.outerjoin(t, and_(t.c.project_id == s.c.project_id, t.c.id == s.c.trace_id))
_TRACE_COLUMNS = (
    t.c.id.label("trace_found"),
    t.c.user_id.label("trace_user_id"),
    t.c.tags.label("trace_tags"),
    t.c.environment.label("trace_environment"),
    t.c.session_id.label("trace_session_id"),
)
# Comparisons on the numeric value that the filter language cannot say (it has no `!=`).
VALUE_OPERATORS = {
    "=": op.eq,
    "!=": op.ne,
    "<": op.lt,
    ">": op.gt,
    "<=": op.le,
    ">=": op.ge,
}


@cache
def score_filter_columns(dialect: str) -> dict[str, FilterColumn]:
    """The columns `filter` conditions may name on score lists (Langfuse's names)."""
    cols = {
        "id": FilterColumn(s.c.id, "string"),
        "timestamp": FilterColumn(s.c.timestamp, "datetime"),
        "environment": FilterColumn(s.c.environment, "string"),
        "name": FilterColumn(s.c.name, "string"),
        "value": FilterColumn(s.c.value, "number"),
        "stringValue": FilterColumn(s.c.string_value, "string"),
        "dataType": FilterColumn(s.c.data_type, "string"),
        "source": FilterColumn(s.c.source, "string"),
        "comment": FilterColumn(s.c.comment, "string"),
        "metadata": FilterColumn(s.c.metadata, "json_object"),
        "traceId": FilterColumn(s.c.trace_id, "string"),
        "observationId": FilterColumn(s.c.observation_id, "string"),
        "sessionId": FilterColumn(s.c.session_id, "string"),
        "datasetRunId": FilterColumn(s.c.dataset_run_id, "string"),
        "configId": FilterColumn(s.c.config_id, "string"),
        "queueId": FilterColumn(s.c.queue_id, "string"),
        "authorUserId": FilterColumn(s.c.author_user_id, "string"),
        # Properties of the score's trace (never match a score without a stored trace).
        "traceName": FilterColumn(t.c.name, "string"),
        "userId": FilterColumn(t.c.user_id, "string"),
        "traceTags": FilterColumn(t.c.tags, "string_array"),
        "traceEnvironment": FilterColumn(t.c.environment, "string"),
    }
    cols["trace_tags"] = cols["traceTags"]  # the name Langfuse's scores table uses
    return cols


def _where(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    value_compare: tuple[str, float] | None,
    value_in: Sequence[float] | None,
) -> list[Any]:
    dialect = conn.dialect.name
    where = [s.c.project_id == project_id]
    where += compile_conditions(conditions, score_filter_columns(dialect), dialect=dialect)
    if value_compare is not None:
        operator, number = value_compare
        where.append(VALUE_OPERATORS[operator](s.c.value, number))
    if value_in is not None:
        where.append(s.c.value.in_(list(value_in)))
    return where


def _newest_first(where: list[Any], limit: int) -> Any:
    """Scores with their trace's columns, newest first (id breaks ties), at most ``limit``."""
    return (
        select(s, *_TRACE_COLUMNS)
        .select_from(_SCORE_WITH_TRACE)
        .where(*where)
        .order_by(s.c.timestamp.desc(), s.c.id.desc())
        .limit(limit)
    )


def list_scores(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    page: int,
    limit: int,
    value_compare: tuple[str, float] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One numbered page of scores (newest first) and the total count."""
    where = _where(conn, project_id, conditions, value_compare, None)
    total = conn.execute(
        select(func.count()).select_from(_SCORE_WITH_TRACE).where(*where)
    ).scalar_one()
    stmt = _newest_first(where, limit).offset((page - 1) * limit)
    return [dict(r) for r in conn.execute(stmt).mappings()], int(total)


def list_scores_after(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    after: tuple[datetime, str] | None,
    limit: int,
    value_in: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` scores (newest first) strictly after the ``(timestamp, id)`` keyset."""
    where = _where(conn, project_id, conditions, None, value_in)
    if after is not None:
        ts, score_id = after
        where.append(or_(s.c.timestamp < ts, and_(s.c.timestamp == ts, s.c.id < score_id)))
    return [dict(r) for r in conn.execute(_newest_first(where, limit)).mappings()]


def get_score(conn: Connection, project_id: str, score_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(s).where(s.c.project_id == project_id, s.c.id == score_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def delete_score(conn: Connection, project_id: str, score_id: str) -> bool:
    """Delete one score; False when the project has no score with that id."""
    result = conn.execute(delete(s).where(s.c.project_id == project_id, s.c.id == score_id))
    return bool(result.rowcount)
