"""Experiments: ``GET /api/public/experiments``, ``GET /api/public/experiment-items`` (cursor
pages, field groups, filters), and, as tracehouse extensions, the score aggregates of one
experiment (``GET /api/public/experiments/{experimentId}/score-aggregates``) and every score of
one experiment (``GET /api/public/experiments/{experimentId}/scores``).

Experiments are read from the observations the SDKs' experiment runners send; see
``tracehouse.store.experiments``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ..errors import InvalidInput
from ..services import experiments as service
from .deps import ProjectPrincipal, ServicesDep, json_response
from .params import (
    combine_conditions,
    decode_cursor,
    encode_cursor,
    parse_timestamp,
    simple_condition,
)
from .scores import v3_item

router = APIRouter()

_SCORE_GROUPS = {"details", "subject"}


def _score(row: dict[str, Any]) -> dict[str, Any]:
    return v3_item(row, _SCORE_GROUPS)


def _window(from_start: str | None, to_start: str | None) -> service.Window:
    start = parse_timestamp("fromStartTime", from_start)
    if start is None:
        raise InvalidInput("fromStartTime", "is required (an ISO-8601 date-time)")
    return service.Window(start, parse_timestamp("toStartTime", to_start))


def _conditions(
    raw_filter: str | None, params: dict[str, str | None], columns: dict[str, str]
) -> list[dict[str, Any]]:
    """The comma-list parameters as `any of` conditions, plus the `filter` conditions."""
    simple = []
    for name, raw in params.items():
        values = service.csv(raw)
        if values:
            simple.append(simple_condition(columns[name], "stringOptions", "any of", values))
    return combine_conditions(raw_filter, simple)


def _page(data: list[dict[str, Any]], next_key: Any) -> Response:
    meta = {"cursor": encode_cursor(*next_key) if next_key else None}
    return json_response({"data": data, "meta": meta})


@router.get("/api/public/experiments")
def list_experiments(
    services: ServicesDep,
    principal: ProjectPrincipal,
    fields: str | None = None,
    limit: int | None = None,
    scoreLimit: int | None = None,
    cursor: str | None = None,
    fromStartTime: str | None = None,
    toStartTime: str | None = None,
    id: str | None = None,
    name: str | None = None,
    datasetId: str | None = None,
    filter: str | None = None,
) -> Response:
    groups = service.field_groups(
        fields, service.EXPERIMENT_GROUPS, service.EXPERIMENT_DEFAULT_GROUPS
    )
    data, next_key = service.list_experiments(
        services.engine,
        principal.project_id,
        _conditions(
            filter, {"id": id, "name": name, "datasetId": datasetId}, service.EXPERIMENT_PARAMS
        ),
        window=_window(fromStartTime, toStartTime),
        groups=groups,
        after=decode_cursor(cursor),
        limit=service.bounded("limit", limit, service.DEFAULT_LIMIT, service.MAX_LIMIT),
        score_limit=service.bounded(
            "scoreLimit", scoreLimit, service.DEFAULT_SCORE_LIMIT, service.MAX_SCORE_LIMIT
        ),
        shape_score=_score,
    )
    return _page(data, next_key)


@router.get("/api/public/experiment-items")
def list_experiment_items(
    services: ServicesDep,
    principal: ProjectPrincipal,
    fields: str | None = None,
    limit: int | None = None,
    scoreLimit: int | None = None,
    cursor: str | None = None,
    fromStartTime: str | None = None,
    toStartTime: str | None = None,
    experimentId: str | None = None,
    experimentName: str | None = None,
    experimentItemId: str | None = None,
    datasetId: str | None = None,
    filter: str | None = None,
) -> Response:
    groups = service.field_groups(fields, service.ITEM_GROUPS, service.ITEM_DEFAULT_GROUPS)
    params = {
        "experimentId": experimentId,
        "experimentName": experimentName,
        "experimentItemId": experimentItemId,
        "datasetId": datasetId,
    }
    data, next_key = service.list_items(
        services.engine,
        principal.project_id,
        _conditions(filter, params, service.ITEM_PARAMS),
        window=_window(fromStartTime, toStartTime),
        groups=groups,
        after=decode_cursor(cursor),
        limit=service.bounded("limit", limit, service.DEFAULT_LIMIT, service.MAX_LIMIT),
        score_limit=service.bounded(
            "scoreLimit", scoreLimit, service.DEFAULT_SCORE_LIMIT, service.MAX_SCORE_LIMIT
        ),
        shape_score=_score,
    )
    return _page(data, next_key)


@router.get("/api/public/experiments/{experiment_id}/score-aggregates")
def get_score_aggregates(
    experiment_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    return json_response(
        service.score_aggregates(services.engine, principal.project_id, experiment_id)
    )


@router.get("/api/public/experiments/{experiment_id}/scores")
def list_experiment_scores(
    experiment_id: str,
    services: ServicesDep,
    principal: ProjectPrincipal,
    limit: int | None = None,
    cursor: str | None = None,
    name: str | None = None,
    dataType: str | None = None,
) -> Response:
    """Every score of an experiment: the scores of its item traces (each with the
    ``experimentItemId`` and ``experimentItemObservationId`` of its item) and its run-level
    scores (both null), as ScoreV3 with details and subject, newest first, in keyset cursor
    pages of up to 10,000 (the page shape of ``GET /api/public/v3/scores``)."""
    limit = service.bounded(
        "limit", limit, service.DEFAULT_EXPERIMENT_SCORES_LIMIT, service.MAX_EXPERIMENT_SCORES_LIMIT
    )
    data, next_key = service.experiment_scores(
        services.engine,
        principal.project_id,
        experiment_id,
        names=service.csv(name),
        data_types=service.data_types(dataType),
        after=decode_cursor(cursor),
        limit=limit,
        shape_score=_score,
    )
    # The meta of GET /api/public/v3/scores: the cursor only when another page follows.
    meta: dict[str, Any] = {"limit": limit}
    if next_key:
        meta["cursor"] = encode_cursor(*next_key)
    return json_response({"data": data, "meta": meta})
