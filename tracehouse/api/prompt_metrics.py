"""Prompt usage metrics: ``GET /api/public/prompt-metrics?name=…`` (one row per version)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ..domain.prompts import check_name
from ..errors import InvalidInput
from ..services.prompt_metrics import prompt_metrics
from .deps import ProjectPrincipal, ServicesDep, json_response

router = APIRouter()


@router.get("/api/public/prompt-metrics")
def get_prompt_metrics(
    services: ServicesDep, principal: ProjectPrincipal, name: str | None = None
) -> Response:
    if name is None:
        raise InvalidInput("name", "is required (the prompt name)")
    check_name(name)
    data = prompt_metrics(services.engine, principal.project_id, name)
    return json_response({"data": data})
