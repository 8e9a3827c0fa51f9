"""Experiments as the public API shows them: the experiments list, the items list, and the
score aggregates and the scores of one experiment (tracehouse extensions).

The routes parse the query parameters; this module holds the rules (field groups, limits, which
filter columns exist) and turns stored rows into the Langfuse wire shapes (``Experiment``,
``ExperimentItem``; scores as ``ScoreV3`` through the shaper the route passes in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from ..domain.events import SCORE_DATA_TYPES
from ..errors import InvalidInput, NotFound
from ..store import experiments as store

ScoreShaper = Callable[[dict[str, Any]], dict[str, Any]]

EXPERIMENT_GROUPS = ("core", "metadata", "scores")
EXPERIMENT_DEFAULT_GROUPS = ("core",)
ITEM_GROUPS = (
    "core",
    "dataset",
    "io",
    "metadata",
    "itemMetadata",
    "experimentMetadata",
    "scores",
)
ITEM_DEFAULT_GROUPS = ("core", "dataset")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_SCORE_LIMIT = 50
DEFAULT_SCORE_LIMIT = 50

# The simple query parameters and the `filter` column each one stands for.
EXPERIMENT_PARAMS = {"id": "id", "name": "name", "datasetId": "datasetId"}
ITEM_PARAMS = {
    "experimentId": "experimentId",
    "experimentName": "experimentName",
    "experimentItemId": "experimentItemId",
    "datasetId": "datasetId",
}


def field_groups(raw: str | None, allowed: tuple[str, ...], default: tuple[str, ...]) -> set[str]:
    """``fields=a,b`` → the groups (``core`` always); the default groups when absent."""
    groups = {g.strip() for g in (raw or "").split(",") if g.strip()}
    if not groups:
        return set(default)
    unknown = sorted(groups - set(allowed))
    if unknown:
        raise InvalidInput("fields", f"unknown field group(s) {unknown}; use {', '.join(allowed)}")
    return groups | {"core"}


def bounded(name: str, value: int | None, default: int, maximum: int) -> int:
    value = default if value is None else value
    if not 1 <= value <= maximum:
        raise InvalidInput(name, f"must be between 1 and {maximum}")
    return value


def csv(raw: str | None) -> list[str]:
    """A comma-separated parameter as a list (blank items dropped)."""
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


@dataclass(frozen=True)
class Window:
    """Items started in [start, end)."""

    start: datetime
    end: datetime | None

    def __post_init__(self) -> None:
        if self.end is not None and self.end <= self.start:
            raise InvalidInput("toStartTime", "must be after fromStartTime")


def iso(ts: datetime | None) -> str | None:
    """UTC ISO-8601 with milliseconds and Z, as Langfuse writes timestamps."""
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _item_version(value: Any) -> str | None:
    """The item version (kept by ingestion only when it is a date) as an ISO date-time."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return iso(parsed)


# -- experiments -------------------------------------------------------------------------------


def experiment_json(
    row: store.ExperimentRow, groups: set[str], scores: list[dict[str, Any]] | None
) -> dict[str, Any]:
    details = row.details
    out: dict[str, Any] = {
        "id": row.id,
        "name": _text(details.get("name")) or "",
        "description": _text(details.get("description")),
        "startTime": iso(row.start_time),
        "endTime": iso(row.end_time),
        "itemCount": row.item_count,
        "datasetId": _text(details.get("datasetId")),
    }
    if "metadata" in groups:
        out["metadata"] = _object(details.get("metadata"))
    if "scores" in groups:
        out["scores"] = scores or []
    return out


def list_experiments(
    engine: Engine,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    window: Window,
    groups: set[str],
    after: tuple[datetime, str] | None,
    limit: int,
    score_limit: int,
    shape_score: ScoreShaper,
) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """One page of experiments and the keyset of its last row when another page follows."""
    with engine.connect() as conn:
        rows = store.list_experiments(
            conn,
            project_id,
            conditions,
            start=window.start,
            end=window.end,
            after=after,
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        run_scores: dict[str, list[dict[str, Any]]] = {}
        if "scores" in groups:
            run_scores = store.run_scores(
                conn, project_id, [r.id for r in rows], per_experiment=score_limit
            )
    data = [
        experiment_json(r, groups, [shape_score(s) for s in run_scores.get(r.id, [])]) for r in rows
    ]
    next_key = (rows[-1].end_time, rows[-1].id) if more else None
    return data, next_key


# -- experiment items --------------------------------------------------------------------------


def item_json(
    row: dict[str, Any], groups: set[str], scores: list[dict[str, Any]] | None
) -> dict[str, Any]:
    details = row["experiment"] if isinstance(row["experiment"], dict) else {}
    out: dict[str, Any] = {
        "id": row["id"],
        "traceId": row["trace_id"],
        "startTime": iso(row["start_time"]),
        "endTime": iso(row["end_time"]),
        "level": row["level"],
        "environment": row["environment"],
        "experimentId": row["experiment_id"],
        "experimentName": _text(details.get("name")) or "",
        "experimentItemId": row["experiment_item_id"] or "",
    }
    if "dataset" in groups:
        out["experimentDatasetId"] = _text(details.get("datasetId"))
        out["experimentItemVersion"] = _item_version(details.get("itemVersion"))
        out["expectedOutput"] = details.get("expectedOutput")
    if "io" in groups:
        out["input"] = row["input"]
        out["output"] = row["output"]
        out["expectedOutput"] = details.get("expectedOutput")
    if "metadata" in groups:
        out["metadata"] = _object(row["metadata"])
    if "itemMetadata" in groups:
        out["experimentItemMetadata"] = _object(details.get("itemMetadata"))
    if "experimentMetadata" in groups:
        out["experimentMetadata"] = _object(details.get("metadata"))
        out["experimentDescription"] = _text(details.get("description"))
    if "scores" in groups:
        out["scores"] = scores or []
    return out


def list_items(
    engine: Engine,
    project_id: str,
    conditions: list[dict[str, Any]],
    *,
    window: Window,
    groups: set[str],
    after: tuple[datetime, str] | None,
    limit: int,
    score_limit: int,
    shape_score: ScoreShaper,
) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """One page of experiment items and the keyset of its last row when another page follows."""
    columns = [c for g in sorted(groups) for c in store.ITEM_GROUP_COLUMNS.get(g, ())]
    with engine.connect() as conn:
        rows = store.list_items(
            conn,
            project_id,
            conditions,
            start=window.start,
            end=window.end,
            after=after,
            limit=limit + 1,
            columns=columns,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        by_trace: dict[str, list[dict[str, Any]]] = {}
        if "scores" in groups:
            for score in store.scores_of_traces(conn, project_id, [r["trace_id"] for r in rows]):
                kept = by_trace.setdefault(score["trace_id"], [])
                if len(kept) < score_limit:
                    kept.append(score)
    data = []
    for row in rows:
        scores = [shape_score(s) for s in by_trace.get(row["trace_id"], [])]
        data.append(item_json(row, groups, scores))
    next_key = (rows[-1]["start_time"], rows[-1]["id"]) if more else None
    return data, next_key


# -- score aggregates (tracehouse extension) ---------------------------------------------------


def _aggregate_json(row: dict[str, Any], categories: dict[tuple[str, str], dict[str, int]]) -> Any:
    out: dict[str, Any] = {
        "name": row["name"],
        "dataType": row["data_type"],
        "count": int(row["count"]),
    }
    numeric = row["data_type"] in ("NUMERIC", "BOOLEAN")
    out["average"] = float(row["average"]) if numeric and row["average"] is not None else None
    out["min"] = float(row["min"]) if numeric and row["min"] is not None else None
    out["max"] = float(row["max"]) if numeric and row["max"] is not None else None
    if row["data_type"] in ("CATEGORICAL", "BOOLEAN"):
        out["values"] = categories.get((row["name"], row["data_type"]), {})
    return out


def score_aggregates(engine: Engine, project_id: str, experiment_id: str) -> dict[str, Any]:
    """Per score name: count, average, min, max over the scores of the experiment's item traces
    (``itemScores``, with ``itemsScored``) and over its run-level scores (``runScores``).
    BOOLEAN averages are the share of true; CATEGORICAL and BOOLEAN carry value counts.
    404 when the experiment has neither items nor run-level scores."""
    with engine.connect() as conn:
        stats = store.item_stats(conn, project_id, experiment_id)
        item_rows = store.item_score_aggregates(conn, project_id, experiment_id)
        category_rows = store.item_score_categories(conn, project_id, experiment_id)
        run_rows = store.run_score_aggregates(conn, project_id, experiment_id)
    if not stats["items"] and not run_rows:
        raise NotFound(f"Experiment not found: {experiment_id!r}")
    categories: dict[tuple[str, str], dict[str, int]] = {}
    for c in category_rows:
        key = (c["name"], c["data_type"])
        categories.setdefault(key, {})[c["string_value"] or ""] = int(c["count"])
    item_scores = []
    for row in item_rows:
        shaped = _aggregate_json(row, categories)
        shaped["itemsScored"] = int(row["traces"])
        item_scores.append(shaped)
    return {
        "experimentId": experiment_id,
        "itemCount": stats["items"],
        "errorCount": stats["errors"],
        "itemScores": item_scores,
        "runScores": [_aggregate_json(r, {}) for r in run_rows],
    }


# -- every score of one experiment (tracehouse extension) --------------------------------------

MAX_EXPERIMENT_SCORES_LIMIT = 10_000
DEFAULT_EXPERIMENT_SCORES_LIMIT = 1_000


def data_types(raw: str | None) -> list[str]:
    """``dataType=NUMERIC,boolean`` → the data types (upper case); 400 naming an unknown one."""
    values = [v.upper() for v in csv(raw)]
    unknown = [v for v in values if v not in SCORE_DATA_TYPES]
    if unknown:
        raise InvalidInput(
            "dataType", f"unknown value(s) {unknown}; use {', '.join(SCORE_DATA_TYPES)}"
        )
    return values


def experiment_scores(
    engine: Engine,
    project_id: str,
    experiment_id: str,
    *,
    names: list[str],
    data_types: list[str],
    after: tuple[datetime, str] | None,
    limit: int,
    shape_score: ScoreShaper,
) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """One page of an experiment's scores (item scores and run-level scores), newest first, as
    ScoreV3 plus ``experimentItemId`` / ``experimentItemObservationId`` (null on run scores),
    and the keyset of its last row when another page follows. One query per page; an empty
    page also checks that the experiment exists (404 when it has neither items nor run
    scores)."""
    with engine.connect() as conn:
        rows = store.experiment_scores(
            conn,
            project_id,
            experiment_id,
            names=names,
            data_types=data_types,
            after=after,
            limit=limit + 1,
        )
        if not rows and not store.experiment_exists(conn, project_id, experiment_id):
            raise NotFound(f"Experiment not found: {experiment_id!r}")
    more = len(rows) > limit
    rows = rows[:limit]
    data = []
    for row in rows:
        out = shape_score(row)
        out["experimentItemId"] = row["item_id"]
        out["experimentItemObservationId"] = row["item_observation_id"]
        data.append(out)
    next_key = (rows[-1]["timestamp"], rows[-1]["id"]) if more else None
    return data, next_key
