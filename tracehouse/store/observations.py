"""Observation queries: the filterable columns, numbered pages, keyset pages, one observation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    and_,
    case,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection

from .filters import KIND_TYPES, FilterColumn, compile_conditions, raw_json_text
from .schema import observations, traces
from .sql import seconds_between

o, t = observations, traces
# The trace side of trace-field filters: its own alias, so a query that also joins ``traces``
# (the v2 list) does not correlate the filter's subquery to that join.
tf = traces.alias("trace_filter")

# Trace fields returned next to each observation by the v2 list (and usable to shape it).
TRACE_CONTEXT = {
    "trace_user_id": t.c.user_id,
    "trace_session_id": t.c.session_id,
    "trace_name": t.c.name,
    "trace_tags": t.c.tags,
    "trace_release": t.c.release,
    "trace_bookmarked": t.c.bookmarked,
    "trace_public": t.c.public,
}

# A negative operator on a trace field is "no trace of this observation matches the positive
# one", so an observation without a trace (or with a NULL field) passes it, as the filter
# compiler's NULL rule says.
_POSITIVE_OF = {"does not contain": "contains", "none of": "any of", "is null": "is not null"}


def _trace_of_observation(trace: Any = t) -> Any:
    return and_(trace.c.project_id == o.c.project_id, trace.c.id == o.c.trace_id)


def _condition_type(kind: str, operator: str) -> str:
    """The filter type a validated operator belongs to, for a column of ``kind``."""
    if operator in ("is null", "is not null"):
        return "null"
    if kind == "string_array":
        return "arrayOptions"
    return "stringOptions" if operator in ("any of", "none of") else "string"


def _on_trace(column: Any, kind: str, dialect: str) -> FilterColumn:
    """A trace field filtered as EXISTS (a semi-join) on the observation's trace."""
    inner = {"field": FilterColumn(column, kind)}

    def build(operator: str, value: Any, _key: str | None) -> Any:
        positive = _POSITIVE_OF.get(operator, operator)
        cond = {
            "column": "field",
            "type": _condition_type(kind, positive),
            "operator": positive,
            "value": value,
        }
        (where,) = compile_conditions([cond], inner, dialect=dialect)
        match = exists().where(_trace_of_observation(tf), where).correlate_except(tf)
        return match if positive == operator else ~match

    return FilterColumn(None, "custom", build=build, types=KIND_TYPES[kind])


@cache
def observation_filter_columns(dialect: str) -> dict[str, FilterColumn]:
    """The columns `filter` conditions may name on observation lists (Langfuse's names)."""
    latency = seconds_between(o.c.start_time, o.c.end_time, dialect)
    time_to_first_token = seconds_between(o.c.start_time, o.c.completion_start_time, dialect)
    tokens_per_second = o.c.output_usage / func.nullif(latency, 0)
    is_root = case((o.c.parent_observation_id.is_(None), true()), else_=false())
    cols = {
        "id": FilterColumn(o.c.id, "string"),
        "type": FilterColumn(o.c.type, "string"),
        "name": FilterColumn(o.c.name, "string"),
        "traceId": FilterColumn(o.c.trace_id, "string"),
        "parentObservationId": FilterColumn(o.c.parent_observation_id, "string"),
        "isRootObservation": FilterColumn(is_root, "boolean"),
        "startTime": FilterColumn(o.c.start_time, "datetime"),
        "endTime": FilterColumn(o.c.end_time, "datetime"),
        "completionStartTime": FilterColumn(o.c.completion_start_time, "datetime"),
        "environment": FilterColumn(o.c.environment, "string"),
        "level": FilterColumn(o.c.level, "string"),
        "statusMessage": FilterColumn(o.c.status_message, "string"),
        "version": FilterColumn(o.c.version, "string"),
        "latency": FilterColumn(latency, "number"),
        "timeToFirstToken": FilterColumn(time_to_first_token, "number"),
        "tokensPerSecond": FilterColumn(tokens_per_second, "number"),
        "inputTokens": FilterColumn(o.c.input_usage, "number"),
        "outputTokens": FilterColumn(o.c.output_usage, "number"),
        "totalTokens": FilterColumn(o.c.total_usage, "number"),
        "inputCost": FilterColumn(o.c.input_cost, "number"),
        "outputCost": FilterColumn(o.c.output_cost, "number"),
        "totalCost": FilterColumn(o.c.total_cost, "number"),
        "model": FilterColumn(o.c.model, "string"),
        "promptName": FilterColumn(o.c.prompt_name, "string"),
        "promptVersion": FilterColumn(o.c.prompt_version, "number"),
        "input": FilterColumn(raw_json_text(o.c.input, dialect), "string"),
        "output": FilterColumn(raw_json_text(o.c.output, dialect), "string"),
        "metadata": FilterColumn(o.c.metadata, "json_object"),
        "userId": _on_trace(tf.c.user_id, "string", dialect),
        "sessionId": _on_trace(tf.c.session_id, "string", dialect),
        "traceName": _on_trace(tf.c.name, "string", dialect),
        "traceEnvironment": _on_trace(tf.c.environment, "string", dialect),
        "traceTags": _on_trace(tf.c.tags, "string_array", dialect),
    }
    cols["tokens"] = cols["totalTokens"]
    cols["providedModelName"] = cols["model"]
    cols["tags"] = cols["traceTags"]
    return cols


def _where(conn: Connection, project_id: str, conditions: list[dict[str, Any]]) -> list[Any]:
    dialect = conn.dialect.name
    return [o.c.project_id == project_id] + compile_conditions(
        conditions, observation_filter_columns(dialect), dialect=dialect
    )


def list_observations(
    conn: Connection, project_id: str, conditions: list[dict[str, Any]], *, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One numbered page, newest first, and the number of matching observations."""
    where = _where(conn, project_id, conditions)
    total = conn.execute(select(func.count()).select_from(o).where(*where)).scalar_one()
    stmt = (
        select(o)
        .where(*where)
        .order_by(o.c.start_time.desc(), o.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()], int(total)


def observations_after(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    after: tuple[datetime, str] | None,
    limit: int,
    columns: Iterable[str],
) -> list[dict[str, Any]]:
    """Up to ``limit`` observations following the sort key ``after`` (start time desc, id desc).

    ``columns`` names the observation columns and ``TRACE_CONTEXT`` fields to load; the sort
    key columns are always loaded.
    """
    wanted = dict.fromkeys(["id", "start_time", *columns])
    selected = [TRACE_CONTEXT[c].label(c) if c in TRACE_CONTEXT else o.c[c] for c in wanted]
    where = _where(conn, project_id, conditions)
    if after is not None:
        start, last_id = after
        where.append(or_(o.c.start_time < start, and_(o.c.start_time == start, o.c.id < last_id)))
    source: Any = o
    if any(c in TRACE_CONTEXT for c in wanted):
        source = o.outerjoin(t, _trace_of_observation())
    stmt = (
        select(*selected)
        .select_from(source)
        .where(*where)
        .order_by(o.c.start_time.desc(), o.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def get_observation(
    conn: Connection, project_id: str, observation_id: str
) -> dict[str, Any] | None:
    stmt = select(o).where(o.c.project_id == project_id, o.c.id == observation_id)
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None
