"""Traces: list (filters, order, pages, field groups), one with details, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..errors import InvalidInput, NotFound
from ..store import traces as trace_store
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import (
    combine_conditions,
    page_and_limit,
    parse_field_groups,
    simple_condition,
    time_window,
)

router = APIRouter()

TRACE_FIELD_GROUPS = {"core", "io", "scores", "observations", "metrics"}


def _query_conditions(
    *,
    user_id: str | None,
    name: str | None,
    session_id: str | None,
    from_ts: str | None,
    to_ts: str | None,
    tags: list[str] | None,
    version: str | None,
    release: str | None,
    environment: list[str] | None,
) -> list[dict[str, Any]]:
    conds = []
    for column, value in (
        ("userId", user_id),
        ("name", name),
        ("sessionId", session_id),
        ("version", version),
        ("release", release),
    ):
        if value is not None:
            conds.append(simple_condition(column, "string", "=", value))
    conds += time_window("timestamp", start=("fromTimestamp", from_ts), end=("toTimestamp", to_ts))
    if tags:
        conds.append(simple_condition("tags", "arrayOptions", "all of", tags))
    if environment:
        conds.append(simple_condition("environment", "stringOptions", "any of", environment))
    return conds


def _shape_trace(row: dict[str, Any], metrics: dict[str, Any], groups: set[str]) -> dict[str, Any]:
    out = shapes.trace(row)
    if "io" not in groups:
        for key in ("input", "output", "metadata"):
            out.pop(key)
    out["observations"] = metrics["observations"] if "observations" in groups else []
    out["scores"] = metrics["scores"] if "scores" in groups else []
    out["latency"] = metrics["latency"] if "metrics" in groups else -1
    out["totalCost"] = metrics["totalCost"] if "metrics" in groups else -1
    return out


@router.get("/api/public/traces")
def list_traces(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
    userId: str | None = None,
    name: str | None = None,
    sessionId: str | None = None,
    fromTimestamp: str | None = None,
    toTimestamp: str | None = None,
    orderBy: str | None = None,
    tags: Annotated[list[str] | None, Query()] = None,
    version: str | None = None,
    release: str | None = None,
    environment: Annotated[list[str] | None, Query()] = None,
    fields: str | None = None,
    filter: str | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    groups = parse_field_groups(fields, TRACE_FIELD_GROUPS)
    conditions = combine_conditions(
        filter,
        _query_conditions(
            user_id=userId,
            name=name,
            session_id=sessionId,
            from_ts=fromTimestamp,
            to_ts=toTimestamp,
            tags=tags,
            version=version,
            release=release,
            environment=environment,
        ),
    )
    with services.engine.connect() as conn:
        rows, total = trace_store.list_traces(
            conn, principal.project_id, conditions, order_by=orderBy, page=page, limit=limit
        )
        metrics = trace_store.trace_metrics(conn, principal.project_id, [r["id"] for r in rows])
    data = [_shape_trace(r, metrics[r["id"]], groups) for r in rows]
    return json_response({"data": data, "meta": shapes.page_meta(page, limit, total)})


@router.get("/api/public/traces/{trace_id}")
def get_trace(
    trace_id: str, services: ServicesDep, principal: ProjectPrincipal, fields: str | None = None
) -> Response:
    groups = parse_field_groups(fields, TRACE_FIELD_GROUPS)
    pid = principal.project_id
    with services.engine.connect() as conn:
        row = trace_store.get_trace(conn, pid, trace_id)
        if row is None:
            raise NotFound("Trace not found")
        metrics = trace_store.trace_metrics(conn, pid, [trace_id])[trace_id]
        observations = (
            trace_store.observations_of_trace(conn, pid, trace_id)
            if "observations" in groups
            else []
        )
        scores = (
            trace_store.scores_of_traces(conn, pid, [trace_id]).get(trace_id, [])
            if "scores" in groups
            else []
        )
    out = _shape_trace(row, metrics, groups)
    out["observations"] = [shapes.observation(r) for r in observations]
    out["scores"] = [shapes.score(r) for r in scores]
    return json_response(out)


@router.delete("/api/public/traces/{trace_id}")
async def delete_trace(
    trace_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    pid = principal.project_id
    deleted = await services.writer.run(
        lambda conn: trace_store.delete_traces(conn, pid, [trace_id])
    )
    if not deleted:
        raise NotFound("Trace not found")
    return json_response({"message": "Trace deleted successfully"})


@router.delete("/api/public/traces")
async def delete_traces(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    payload = parse_json(await read_body(request, services.settings.max_body_bytes))
    ids = payload.get("traceIds") if isinstance(payload, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("traceIds", "must be a non-empty list of trace id strings")
    pid = principal.project_id
    await services.writer.run(
        lambda conn: trace_store.delete_traces(conn, pid, list(dict.fromkeys(ids)))
    )
    return json_response({"message": "Traces deleted successfully"})
