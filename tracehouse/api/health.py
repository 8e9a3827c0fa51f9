"""Health, readiness and the key's project."""

from __future__ import annotations

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
    if await anyio.to_thread.run_sync(is_reachable, services.engine):
        return json_response({"status": "OK", "version": __version__})
    return json_response(
        {"status": "unavailable", "version": __version__, "message": "The store is not reachable"},
        status_code=503,
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
