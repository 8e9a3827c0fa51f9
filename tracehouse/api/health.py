"""Health, readiness and the key's project."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import Response

from .. import __version__
from ..store import projects as project_store
from ..store.db import is_reachable
from .deps import ProjectPrincipal, ServicesDep, json_response

router = APIRouter()


@router.get("/api/public/health")
async def health() -> Response:
    return json_response({"status": "OK", "version": __version__})


@router.get("/api/public/ready")
async def ready(services: ServicesDep) -> Response:
    """503 when the store (or, scaled out, the Redis ingest log) is unreachable. Scaled out, the
    reply also says how many requests wait in the stream, how many of those workers hold, and
    how many workers the consumer group knows."""
    if not await anyio.to_thread.run_sync(is_reachable, services.engine):
        return _unavailable("The store is not reachable")
    body: dict[str, Any] = {"status": "OK", "version": __version__}
    if services.stream is not None:
        try:
            status = await services.stream.status()
        except Exception:
            return _unavailable("The ingest log (Redis) is not reachable")
        body.update(
            ingestBacklog=status["backlog"],
            ingestPending=status["pending"],
            ingestWorkers=status["consumers"],
        )
    return json_response(body)


def _unavailable(message: str) -> Response:
    return json_response(
        {"status": "unavailable", "version": __version__, "message": message}, status_code=503
    )


@router.get("/api/public/projects")
def get_projects(services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        project = project_store.get_project(conn, principal.project_id)
        org = project_store.get_organization(conn, principal.org_id) if project else None
    data = []
    if project and org:
        item = {
            "id": project["id"],
            "name": project["name"],
            "organization": {"id": org["id"], "name": org["name"]},
            "metadata": project["metadata"] or {},
        }
        if project["retention_days"]:
            item["retentionDays"] = project["retention_days"]
        data.append(item)
    return json_response({"data": data})
