"""Experiment queries: experiments and their items, read from the observations the SDKs'
experiment runners send (``langfuse.experiment.*`` span attributes), and the scores on them.

An experiment item is the observation whose id equals its ``experiment_root_observation_id``
(the runner's ``experiment-item-task`` span); an experiment is every observation carrying its
``experiment_id``. Run-level scores are scores whose ``dataset_run_id`` is the experiment id;
item scores are the scores of an item's trace. Every query goes through the partial index on
``(project_id, experiment_id, start_time)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from .filters import FilterColumn, compile_conditions
from .schema import observations, scores
from .types import unpacked

o, s = observations, scores

EXPERIMENT_INDEX = "ix_observations_project_id_experiment_id_start_time"

# Columns of an item row beyond the core ones, by the field group that needs them.
ITEM_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "io": ("input", "output"),
    "metadata": ("metadata",),
}
_ITEM_CORE = (
    "id",
    "trace_id",
    "start_time",
    "end_time",
    "level",
    "environment",
    "experiment_id",
    "experiment_item_id",
    "experiment",
)


def experiment_field(key: str, dialect: str) -> Any:
    """A top-level text field of the ``experiment`` JSON column (NULL when absent)."""
    if dialect == "postgresql":
        expr = cast(o.c.experiment, JSONB)[key].astext
    else:
        expr = func.json_extract(unpacked(o.c.experiment, dialect), f"$.{key}")
    return type_coerce(expr, Text())


def _is_item() -> Any:
    return and_(o.c.experiment_id.is_not(None), o.c.id == o.c.experiment_root_observation_id)


@cache
def experiment_filter_columns(dialect: str) -> dict[str, FilterColumn]:
    """Columns `filter` may name on ``GET /api/public/experiments``."""
    return {
        "id": FilterColumn(o.c.experiment_id, "string"),
        "name": FilterColumn(experiment_field("name", dialect), "string"),
        "datasetId": FilterColumn(experiment_field("datasetId", dialect), "string"),
    }


@cache
def item_filter_columns(dialect: str) -> dict[str, FilterColumn]:
    """Columns `filter` may name on ``GET /api/public/experiment-items``."""
    return {
        "experimentId": FilterColumn(o.c.experiment_id, "string"),
        "experimentName": FilterColumn(experiment_field("name", dialect), "string"),
        "experimentItemId": FilterColumn(o.c.experiment_item_id, "string"),
        "datasetId": FilterColumn(experiment_field("datasetId", dialect), "string"),
    }


def _window(start: datetime, end: datetime | None) -> list[Any]:
    where = [o.c.start_time >= start]
    if end is not None:
        where.append(o.c.start_time < end)
    return where


@dataclass(frozen=True)
class ExperimentRow:
    id: str
    start_time: datetime
    end_time: datetime
    item_count: int
    details: dict[str, Any]  # the ``experiment`` JSON of its newest item


def list_experiments(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    start: datetime,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ExperimentRow]:
    """Up to ``limit`` experiments with an item started in [start, end), by latest activity
    (the latest end of any of their observations in the window) desc, experiment id desc,
    strictly after the ``after`` keyset."""
    dialect = conn.dialect.name
    where = [o.c.project_id == project_id, o.c.experiment_id.is_not(None), *_window(start, end)]
    where += compile_conditions(conditions, experiment_filter_columns(dialect), dialect=dialect)
    first = func.min(o.c.start_time)
    last = func.max(func.coalesce(o.c.end_time, o.c.start_time))
    items = func.sum(case((o.c.id == o.c.experiment_root_observation_id, 1), else_=0))
    having = [items > 0]
    if after is not None:
        at, last_id = after
        having.append(or_(last < at, and_(last == at, o.c.experiment_id < last_id)))
    stmt = (
        select(
            o.c.experiment_id,
            first.label("start_time"),
            last.label("end_time"),
            type_coerce(items, Integer()).label("item_count"),
        )
        .where(*where)
        .group_by(o.c.experiment_id)
        .having(*having)
        .order_by(last.desc(), o.c.experiment_id.desc())
        .limit(limit)
    )
    return [
        ExperimentRow(
            id=row.experiment_id,
            start_time=row.start_time,
            end_time=row.end_time,
            item_count=int(row.item_count),
            details=newest_item_details(conn, project_id, row.experiment_id, start, end),
        )
        for row in conn.execute(stmt).all()
    ]


def newest_item_details(
    conn: Connection, project_id: str, experiment_id: str, start: datetime, end: datetime | None
) -> dict[str, Any]:
    """The ``experiment`` JSON (name, description, dataset id, metadata, ...) of the newest
    item of an experiment in the window."""
    stmt = (
        select(o.c.experiment)
        .where(
            o.c.project_id == project_id,
            o.c.experiment_id == experiment_id,
            o.c.id == o.c.experiment_root_observation_id,
            *_window(start, end),
        )
        .order_by(o.c.start_time.desc(), o.c.id.desc())
        .limit(1)
    )
    details = conn.execute(stmt).scalar()
    return details if isinstance(details, dict) else {}


def list_items(
    conn: Connection,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    start: datetime,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
    columns: Iterable[str],
) -> list[dict[str, Any]]:
    """Up to ``limit`` experiment items started in [start, end), start time desc, id desc,
    strictly after the ``after`` keyset. ``columns`` names extra observation columns."""
    dialect = conn.dialect.name
    wanted = dict.fromkeys([*_ITEM_CORE, *columns])
    where = [o.c.project_id == project_id, _is_item(), *_window(start, end)]
    where += compile_conditions(conditions, item_filter_columns(dialect), dialect=dialect)
    if after is not None:
        at, last_id = after
        where.append(or_(o.c.start_time < at, and_(o.c.start_time == at, o.c.id < last_id)))
    stmt = (
        select(*(o.c[c] for c in wanted))
        .where(*where)
        .order_by(o.c.start_time.desc(), o.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def scores_of_traces(
    conn: Connection, project_id: str, trace_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Every score of the given traces, newest first (id breaks ties)."""
    if not trace_ids:
        return []
    stmt = (
        select(s)
        .where(s.c.project_id == project_id, s.c.trace_id.in_(sorted(set(trace_ids))))
        .order_by(s.c.timestamp.desc(), s.c.id.desc())
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def run_scores(
    conn: Connection, project_id: str, experiment_ids: Sequence[str], *, per_experiment: int
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_experiment`` run-level scores (``dataset_run_id`` = the experiment id) of
    each experiment, newest first."""
    if not experiment_ids or per_experiment < 1:
        return {}
    rank = (
        func.row_number()
        .over(partition_by=s.c.dataset_run_id, order_by=(s.c.timestamp.desc(), s.c.id.desc()))
        .label("rank")
    )
    ranked = (
        select(s, rank)
        .where(s.c.project_id == project_id, s.c.dataset_run_id.in_(list(experiment_ids)))
        .subquery()
    )
    stmt = (
        select(*(ranked.c[c.name] for c in s.columns))
        .where(ranked.c.rank <= per_experiment)
        .order_by(ranked.c.timestamp.desc(), ranked.c.id.desc())
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(stmt).mappings():
        out.setdefault(row["dataset_run_id"], []).append(dict(row))
    return out


# -- aggregates (tracehouse extension) ---------------------------------------------------------


def _item_traces(project_id: str, experiment_id: str) -> Any:
    return (
        select(o.c.trace_id)
        .where(
            o.c.project_id == project_id,
            o.c.experiment_id == experiment_id,
            o.c.id == o.c.experiment_root_observation_id,
        )
        .distinct()
        .subquery()
    )


def item_stats(conn: Connection, project_id: str, experiment_id: str) -> dict[str, Any]:
    """Items of an experiment (all time): count, first start, last end, errors."""
    stmt = select(
        func.count().label("items"),
        func.sum(case((o.c.level == "ERROR", 1), else_=0)).label("errors"),
    ).where(
        o.c.project_id == project_id,
        o.c.experiment_id == experiment_id,
        o.c.id == o.c.experiment_root_observation_id,
    )
    row = conn.execute(stmt).one()
    return {"items": int(row.items or 0), "errors": int(row.errors or 0)}


def item_score_aggregates(
    conn: Connection, project_id: str, experiment_id: str
) -> list[dict[str, Any]]:
    """Per score name and data type over the scores of the experiment's item traces: count,
    items scored, average/min/max of the numeric value (BOOLEAN: 1 true, 0 false)."""
    traces = _item_traces(project_id, experiment_id)
    stmt = (
        select(
            s.c.name,
            s.c.data_type,
            func.count().label("count"),
            func.count(s.c.trace_id.distinct()).label("traces"),
            func.avg(s.c.value).label("average"),
            func.min(s.c.value).label("min"),
            func.max(s.c.value).label("max"),
        )
        .select_from(s.join(traces, traces.c.trace_id == s.c.trace_id))
        .where(s.c.project_id == project_id)
        .group_by(s.c.name, s.c.data_type)
        .order_by(s.c.name, s.c.data_type)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def item_score_categories(
    conn: Connection, project_id: str, experiment_id: str
) -> list[dict[str, Any]]:
    """Counts per (name, data type, string value) of the item traces' non-numeric scores."""
    traces = _item_traces(project_id, experiment_id)
    stmt = (
        select(s.c.name, s.c.data_type, s.c.string_value, func.count().label("count"))
        .select_from(s.join(traces, traces.c.trace_id == s.c.trace_id))
        .where(
            s.c.project_id == project_id,
            s.c.data_type.in_(("CATEGORICAL", "BOOLEAN")),
        )
        .group_by(s.c.name, s.c.data_type, s.c.string_value)
        .order_by(s.c.name, s.c.data_type, s.c.string_value)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def run_score_aggregates(
    conn: Connection, project_id: str, experiment_id: str
) -> list[dict[str, Any]]:
    """Per score name and data type over the experiment's run-level scores."""
    stmt = (
        select(
            s.c.name,
            s.c.data_type,
            func.count().label("count"),
            literal(0).label("traces"),
            func.avg(s.c.value).label("average"),
            func.min(s.c.value).label("min"),
            func.max(s.c.value).label("max"),
        )
        .where(s.c.project_id == project_id, s.c.dataset_run_id == experiment_id)
        .group_by(s.c.name, s.c.data_type)
        .order_by(s.c.name, s.c.data_type)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


# -- every score of one experiment (tracehouse extension) --------------------------------------


def _unindexed(column: Any, dialect: str) -> Any:
    """``+column`` on SQLite: the same value, but the planner will not use an index for it.

    Without statistics SQLite would otherwise walk all the project's observations in trace
    order to group the items without a sort, or all the project's scores in time order for
    the keyset; the experiment's rows are a small part of either."""
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


# The score columns a ScoreV3 is made of (not the merge bookkeeping).
_SCORE_V3_COLUMNS = tuple(
    c.name for c in s.columns if c.name not in ("merge_keys", "execution_trace_id")
)


def _score_filters(names: Sequence[str], data_types: Sequence[str]) -> list[Any]:
    where = []
    if names:
        where.append(s.c.name.in_(list(names)))
    if data_types:
        where.append(s.c.data_type.in_(list(data_types)))
    return where


def experiment_scores(
    conn: Connection,
    project_id: str,
    experiment_id: str,
    *,
    names: Sequence[str],
    data_types: Sequence[str],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` scores of an experiment, newest first (id breaks ties), strictly after the
    ``after`` keyset: every score whose trace is an item trace (trace- and observation-level),
    with ``item_observation_id`` / ``item_id`` (the item's root observation and dataset item),
    and its run-level scores (``dataset_run_id`` = the experiment id; item columns NULL).

    One query: the item branch reads the experiment's items from the partial experiment index,
    one row per trace (the lowest item observation id, should a trace hold two items), and
    their scores from the ``(project_id, trace_id)`` index; the run branch reads the
    ``(project_id, dataset_run_id)`` index. A run score on an item trace is listed once (as an
    item score). Never scans the project's scores."""
    dialect = conn.dialect.name
    score_columns = [s.c[name] for name in _SCORE_V3_COLUMNS]
    where = [s.c.project_id == project_id, *_score_filters(names, data_types)]
    if after is not None:
        at, last_id = after
        ts, score_id = _unindexed(s.c.timestamp, dialect), _unindexed(s.c.id, dialect)
        where.append(or_(ts < at, and_(ts == at, score_id < last_id)))
    # One row per item trace (the lowest item id, should a trace hold two items of the
    # experiment), from the partial experiment index.
    traces = (
        select(o.c.trace_id, func.min(o.c.id).label("item_observation_id"))
        .where(
            o.c.project_id == project_id,
            o.c.experiment_id.is_not(None),
            o.c.experiment_id == experiment_id,
            o.c.id == o.c.experiment_root_observation_id,
        )
        .group_by(_unindexed(o.c.trace_id, dialect))
        .subquery("item_traces")
    )
    item = o.alias("item")
    item_scores = (
        select(
            *score_columns, traces.c.item_observation_id, item.c.experiment_item_id.label("item_id")
        )
        .select_from(
            traces.join(s, s.c.trace_id == traces.c.trace_id).join(
                item,
                and_(item.c.project_id == project_id, item.c.id == traces.c.item_observation_id),
            )
        )
        .where(
            *where,
            # (Scores API and ingestion reject a score with both; kept should one exist.)
            or_(s.c.dataset_run_id.is_(None), s.c.dataset_run_id != experiment_id),
        )
    )
    run_scores = select(
        *score_columns,
        type_coerce(null(), Text()).label("item_observation_id"),
        type_coerce(null(), Text()).label("item_id"),
    ).where(*where, s.c.dataset_run_id == experiment_id)
    both = union_all(item_scores, run_scores).subquery("experiment_scores")
    stmt = select(both).order_by(both.c.timestamp.desc(), both.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def experiment_exists(conn: Connection, project_id: str, experiment_id: str) -> bool:
    """Whether the experiment has an item or a run-level score."""
    has_item = (
        select(o.c.id)
        .where(
            o.c.project_id == project_id,
            o.c.experiment_id == experiment_id,
            o.c.id == o.c.experiment_root_observation_id,
        )
        .exists()
    )
    has_run_score = (
        select(s.c.id)
        .where(s.c.project_id == project_id, s.c.dataset_run_id == experiment_id)
        .exists()
    )
    return bool(conn.execute(select(or_(has_item, has_run_score))).scalar())
