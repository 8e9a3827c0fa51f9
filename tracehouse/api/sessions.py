"""Sessions: the list (numbered pages) and one session with its traces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ..errors import NotFound
from ..store import sessions as session_store
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response
from .params import page_and_limit, simple_condition, time_window

router = APIRouter()


@router.get("/api/public/sessions")
def list_sessions(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
    fromTimestamp: str | None = None,
    toTimestamp: str | None = None,
    environment: Annotated[list[str] | None, Query()] = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    conditions = time_window(
        "createdAt", start=("fromTimestamp", fromTimestamp), end=("toTimestamp", toTimestamp)
    )
    if environment:
        conditions.append(simple_condition("environment", "stringOptions", "any of", environment))
    with services.engine.connect() as conn:
        rows, total = session_store.list_sessions(
            conn, principal.project_id, conditions, page=page, limit=limit
        )
    data = [shapes.session(r) for r in rows]
    return json_response({"data": data, "meta": shapes.page_meta(page, limit, total)})


@router.get("/api/public/sessions/{session_id}")
def get_session(session_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        row = session_store.get_session(conn, principal.project_id, session_id)
        if row is None:
            raise NotFound("Session not found")
        session_traces = session_store.traces_of_session(conn, principal.project_id, session_id)
    out = shapes.session(row)
    out["traces"] = [shapes.trace(r) for r in session_traces]
    return json_response(out)
