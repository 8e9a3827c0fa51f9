"""Usage figures of one prompt's versions, from the observations linked to them (SQL only).

An observation is linked to a prompt version by its ``prompt_name`` / ``prompt_version``
columns (ingestion fills them from ``promptName``/``promptVersion`` and the OTel prompt
attributes). Scores count for a version when they are numeric or boolean and attached to one
of its observations (``scores.observation_id``) or to the trace of one of them (a trace score:
``observation_id`` NULL). Each score counts once per version, however many of the version's
observations share its trace.

Indexes: the observation side filters on ``(project_id, prompt_name)``, which no index of
``observations`` leads with, so it reads the project's observations; an index on
``observations (project_id, prompt_name, prompt_version)`` (partial: ``prompt_name IS NOT
NULL``) would make it a range read. The score side joins through ``scores (project_id,
trace_id)`` (an observation score always carries its trace id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from .schema import observations, prompts, scores
from .sql import seconds_between

o, s = observations, scores
SCORED_TYPES = ("NUMERIC", "BOOLEAN")


@dataclass
class ScoreFigure:
    name: str
    average: float
    count: int


@dataclass
class VersionMetrics:
    """The figures of one version; ``None`` where there is nothing to average (or no cost)."""

    version: int
    observation_count: int = 0
    first_used_at: datetime | None = None
    last_used_at: datetime | None = None
    avg_latency_seconds: float | None = None
    total_input_usage: float = 0.0
    total_output_usage: float = 0.0
    avg_input_usage: float | None = None
    avg_output_usage: float | None = None
    total_cost: float | None = None
    avg_cost: float | None = None
    scores: list[ScoreFigure] = field(default_factory=list)


def _num(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def stored_versions(conn: Connection, project_id: str, name: str) -> list[int]:
    rows = conn.execute(
        select(prompts.c.version).where(prompts.c.project_id == project_id, prompts.c.name == name)
    )
    return [int(v) for (v,) in rows]


def usage_by_version(conn: Connection, project_id: str, name: str) -> dict[int, VersionMetrics]:
    """Count, first/last start, mean latency, usage and cost of the linked observations."""
    latency = seconds_between(o.c.start_time, o.c.end_time, conn.dialect.name)
    stmt = (
        select(
            o.c.prompt_version,
            func.count(),
            func.min(o.c.start_time),
            func.max(o.c.start_time),
            func.avg(latency),
            func.sum(o.c.input_usage),
            func.sum(o.c.output_usage),
            func.avg(o.c.input_usage),
            func.avg(o.c.output_usage),
            func.sum(o.c.total_cost),
            func.avg(o.c.total_cost),
        )
        .where(
            o.c.project_id == project_id,
            o.c.prompt_name == name,
            o.c.prompt_version.is_not(None),
        )
        .group_by(o.c.prompt_version)
    )
    out: dict[int, VersionMetrics] = {}
    for row in conn.execute(stmt):
        version = int(row[0])
        out[version] = VersionMetrics(
            version=version,
            observation_count=int(row[1]),
            first_used_at=row[2],
            last_used_at=row[3],
            avg_latency_seconds=_num(row[4]),
            total_input_usage=_num(row[5]) or 0.0,
            total_output_usage=_num(row[6]) or 0.0,
            avg_input_usage=_num(row[7]),
            avg_output_usage=_num(row[8]),
            total_cost=_num(row[9]),
            avg_cost=_num(row[10]),
        )
    return out


def scores_by_version(conn: Connection, project_id: str, name: str) -> dict[int, list[ScoreFigure]]:
    """Mean and count of numeric/boolean scores per version and score name (by name).

    The linked observations are read first (a materialized CTE, so neither planner starts
    from all of the project's scores) and their scores found through ``(project_id,
    trace_id)``."""
    used = (
        select(o.c.project_id, o.c.id, o.c.trace_id, o.c.prompt_version)
        .where(
            o.c.project_id == project_id,
            o.c.prompt_name == name,
            o.c.prompt_version.is_not(None),
        )
        .cte("used")
        .prefix_with("MATERIALIZED")
    )
    linked = (
        select(used.c.prompt_version.label("version"), s.c.id, s.c.name, s.c.value)
        .select_from(
            used.join(
                s,
                and_(
                    s.c.project_id == used.c.project_id,
                    s.c.trace_id == used.c.trace_id,
                    or_(s.c.observation_id == used.c.id, s.c.observation_id.is_(None)),
                ),
            )
        )
        .where(s.c.data_type.in_(SCORED_TYPES), s.c.value.is_not(None))
        .distinct()  # a trace score counts once per version, not once per observation
        .subquery()
    )
    stmt = (
        select(linked.c.version, linked.c.name, func.avg(linked.c.value), func.count())
        .group_by(linked.c.version, linked.c.name)
        .order_by(linked.c.version, linked.c.name)
    )
    out: dict[int, list[ScoreFigure]] = {}
    for version, score_name, average, count in conn.execute(stmt):
        out.setdefault(int(version), []).append(
            ScoreFigure(name=score_name, average=float(average), count=int(count))
        )
    return out


def prompt_metrics(conn: Connection, project_id: str, name: str) -> list[VersionMetrics]:
    """Every version of ``name`` that exists or was used, newest first."""
    usage = usage_by_version(conn, project_id, name)
    figures = scores_by_version(conn, project_id, name)
    versions = set(usage) | set(stored_versions(conn, project_id, name))
    out = []
    for version in sorted(versions, reverse=True):
        metrics = usage.get(version) or VersionMetrics(version=version)
        metrics.scores = figures.get(version, [])
        out.append(metrics)
    return out
