"""Trace queries: filtered, ordered, paginated lists; one trace; deletion."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, select
from sqlalchemy.engine import Connection

from ..errors import InvalidInput
from .filters import FilterColumn, compile_conditions, raw_json_text
from .schema import observations, scores, traces
from .sql import seconds_between

o, s, t = observations, scores, traces

TRACE_ORDER_FIELDS = {
    "id": t.c.id,
    "timestamp": t.c.timestamp,
    "name": t.c.name,
    "userId": t.c.user_id,
    "release": t.c.release,
    "version": t.c.version,
    "public": t.c.public,
    "bookmarked": t.c.bookmarked,
    "sessionId": t.c.session_id,
    "environment": t.c.environment,
}


def _obs_of_trace() -> Any:
    return and_(o.c.project_id == t.c.project_id, o.c.trace_id == t.c.id)


def _obs_agg(expr: Any) -> Any:
    return func.coalesce(select(expr).where(_obs_of_trace()).scalar_subquery(), 0)


def _level_count(level: str) -> Any:
    return func.coalesce(
        select(func.count()).where(_obs_of_trace(), o.c.level == level).scalar_subquery(), 0
    )


def _score_of_trace(name: str | None) -> Any:
    cond = and_(s.c.project_id == t.c.project_id, s.c.trace_id == t.c.id)
    return and_(cond, s.c.name == name) if name is not None else cond


def _scores_avg(operator: str, value: Any, key: str | None) -> Any:
    avg = select(func.avg(s.c.value)).where(_score_of_trace(key), s.c.data_type == "NUMERIC")
    sub = avg.scalar_subquery()
    return {
        "=": sub == value,
        ">": sub > value,
        "<": sub < value,
        ">=": sub >= value,
        "<=": sub <= value,
    }[operator]


def _score_categories(operator: str, value: Any, key: str | None) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("filter.value", "score_categories needs a list of strings")
    match = exists().where(_score_of_trace(key), s.c.string_value.in_(value))
    return match if operator == "any of" else ~match


def _score_booleans(operator: str, value: Any, key: str | None) -> Any:
    if not isinstance(value, bool):
        raise InvalidInput("filter.value", "score_booleans needs a boolean value")
    match = exists().where(
        _score_of_trace(key), s.c.data_type == "BOOLEAN", s.c.value == (1.0 if value else 0.0)
    )
    return match if operator == "=" else ~match


@cache
def trace_filter_columns(dialect: str) -> dict[str, FilterColumn]:
    """The columns `filter` conditions may name on trace lists (Langfuse's names)."""
    start = func.min(o.c.start_time)
    end = func.max(func.coalesce(o.c.end_time, o.c.start_time))
    latency = _obs_agg(seconds_between(start, end, dialect))
    severity = func.max(
        case(
            (o.c.level == "ERROR", 4),
            (o.c.level == "WARNING", 3),
            (o.c.level == "DEFAULT", 2),
            else_=1,
        )
    )
    level = case(
        (_obs_agg(severity) == 4, "ERROR"),
        (_obs_agg(severity) == 3, "WARNING"),
        (_obs_agg(severity) == 1, "DEBUG"),
        else_="DEFAULT",
    )
    total_tokens = _obs_agg(func.sum(o.c.total_usage))
    cols = {
        "id": FilterColumn(t.c.id, "string"),
        "name": FilterColumn(t.c.name, "string"),
        "timestamp": FilterColumn(t.c.timestamp, "datetime"),
        "userId": FilterColumn(t.c.user_id, "string"),
        "sessionId": FilterColumn(t.c.session_id, "string"),
        "environment": FilterColumn(t.c.environment, "string"),
        "version": FilterColumn(t.c.version, "string"),
        "release": FilterColumn(t.c.release, "string"),
        "tags": FilterColumn(t.c.tags, "string_array"),
        "bookmarked": FilterColumn(t.c.bookmarked, "boolean"),
        "public": FilterColumn(t.c.public, "boolean"),
        "metadata": FilterColumn(t.c.metadata, "json_object"),
        "input": FilterColumn(raw_json_text(t.c.input, dialect), "string"),
        "output": FilterColumn(raw_json_text(t.c.output, dialect), "string"),
        "latency": FilterColumn(latency, "number"),
        "inputTokens": FilterColumn(_obs_agg(func.sum(o.c.input_usage)), "number"),
        "outputTokens": FilterColumn(_obs_agg(func.sum(o.c.output_usage)), "number"),
        "totalTokens": FilterColumn(total_tokens, "number"),
        "tokens": FilterColumn(total_tokens, "number"),
        "inputCost": FilterColumn(_obs_agg(func.sum(o.c.input_cost)), "number"),
        "outputCost": FilterColumn(_obs_agg(func.sum(o.c.output_cost)), "number"),
        "totalCost": FilterColumn(_obs_agg(func.sum(o.c.total_cost)), "number"),
        "level": FilterColumn(level, "string"),
        "errorCount": FilterColumn(_level_count("ERROR"), "number"),
        "warningCount": FilterColumn(_level_count("WARNING"), "number"),
        "defaultCount": FilterColumn(_level_count("DEFAULT"), "number"),
        "debugCount": FilterColumn(_level_count("DEBUG"), "number"),
        "scores_avg": FilterColumn(
            None, "custom", build=_scores_avg, types=frozenset({"numberObject", "number"})
        ),
        "score_categories": FilterColumn(
            None, "custom", build=_score_categories, types=frozenset({"categoryOptions"})
        ),
        "score_booleans": FilterColumn(
            None, "custom", build=_score_booleans, types=frozenset({"booleanObject"})
        ),
    }
    cols["scores"] = cols["scores_avg"]
    return cols


def parse_order_by(raw: str | None, fields: dict[str, Any], default: Any) -> list[Any]:
    """``field.asc|desc`` → ORDER BY clauses; the id breaks ties so pages are stable."""
    if not raw:
        return [default.desc()]
    name, _, direction = raw.partition(".")
    if name not in fields:
        raise InvalidInput("orderBy", f"unknown field {name!r}; use one of {', '.join(fields)}")
    if direction not in ("asc", "desc"):
        raise InvalidInput("orderBy", "direction must be 'asc' or 'desc', e.g. timestamp.desc")
    col = fields[name]
    return [col.asc() if direction == "asc" else col.desc()]


def list_traces(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    order_by: str | None,
    page: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    where = [t.c.project_id == project_id]
    where += compile_conditions(
        conditions, trace_filter_columns(conn.dialect.name), dialect=conn.dialect.name
    )
    total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
    order = parse_order_by(order_by, TRACE_ORDER_FIELDS, t.c.timestamp) + [t.c.id.desc()]
    stmt = select(t).where(*where).order_by(*order).limit(limit).offset((page - 1) * limit)
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    return rows, int(total)


def get_trace(conn: Connection, project_id: str, trace_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(t).where(t.c.project_id == project_id, t.c.id == trace_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def trace_metrics(
    conn: Connection, project_id: str, trace_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Per trace: observation ids, score ids, latency (s) and total cost (USD)."""
    out: dict[str, dict[str, Any]] = {
        tid: {
            "observations": [],
            "scores": [],
            "latency": 0.0,
            "totalCost": 0.0,
            "first": None,
            "last": None,
        }
        for tid in trace_ids
    }
    if not trace_ids:
        return out
    # Sorted here, not with ORDER BY: SQLite would then walk the (project_id, start_time) index
    # through the whole project instead of looking the trace ids up.
    obs_rows = sorted(
        conn.execute(
            select(o.c.trace_id, o.c.id, o.c.start_time, o.c.end_time, o.c.total_cost).where(
                o.c.project_id == project_id, o.c.trace_id.in_(trace_ids)
            )
        ),
        key=lambda row: row[2],
    )
    for trace_id, obs_id, start, end, cost in obs_rows:
        m = out[trace_id]
        m["observations"].append(obs_id)
        m["totalCost"] += cost or 0.0
        last = end or start
        m["first"] = start if m["first"] is None or start < m["first"] else m["first"]
        m["last"] = last if m["last"] is None or last > m["last"] else m["last"]
    score_rows = sorted(
        conn.execute(
            select(s.c.trace_id, s.c.id, s.c.timestamp).where(
                s.c.project_id == project_id, s.c.trace_id.in_(trace_ids)
            )
        ),
        key=lambda row: row[2],
    )
    for trace_id, score_id, _ in score_rows:
        out[trace_id]["scores"].append(score_id)
    for m in out.values():
        first, last = m.pop("first"), m.pop("last")
        if isinstance(first, datetime) and isinstance(last, datetime):
            m["latency"] = (last - first).total_seconds()
    return out


def observations_of_trace(conn: Connection, project_id: str, trace_id: str) -> list[dict[str, Any]]:
    stmt = select(o).where(o.c.project_id == project_id, o.c.trace_id == trace_id)
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    return sorted(rows, key=lambda r: (r["start_time"], r["id"]))  # see trace_metrics


def scores_of_traces(
    conn: Connection, project_id: str, trace_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stmt = select(s).where(s.c.project_id == project_id, s.c.trace_id.in_(trace_ids))
    rows = sorted(  # see trace_metrics
        (dict(r) for r in conn.execute(stmt).mappings()), key=lambda r: (r["timestamp"], r["id"])
    )
    for r in rows:
        out[r["trace_id"]].append(r)
    return out


def delete_traces(conn: Connection, project_id: str, trace_ids: list[str]) -> int:
    """Delete traces with their observations and scores; returns how many traces existed."""
    deleted = 0
    for start in range(0, len(trace_ids), 500):
        chunk = trace_ids[start : start + 500]
        deleted += conn.execute(
            delete(t).where(t.c.project_id == project_id, t.c.id.in_(chunk))
        ).rowcount
        conn.execute(delete(o).where(o.c.project_id == project_id, o.c.trace_id.in_(chunk)))
        conn.execute(delete(s).where(s.c.project_id == project_id, s.c.trace_id.in_(chunk)))
    return deleted
