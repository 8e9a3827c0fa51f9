"""Model definitions: list (the project's own, then the built-in ones), get, create, delete.

Creating or deleting a project model takes effect for data ingested afterwards; stored
observations keep the cost they were priced with until they are written again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import Forbidden, InvalidInput, NotFound
from ..pricing.definitions import ModelDefinition, parse_model
from ..store import models as model_store
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import page_and_limit

router = APIRouter()

MODEL_BODY_LIMIT = 1_000_000


def model_shape(model: ModelDefinition) -> dict[str, Any]:
    """The ``Model`` of the public API."""
    prices = model.default_tier.prices
    return {
        "id": model.id,
        "modelName": model.model_name,
        "matchPattern": model.match_pattern,
        "startDate": shapes.iso(model.start_date),
        "unit": model.unit,
        "inputPrice": prices.get("input"),
        "outputPrice": prices.get("output"),
        "totalPrice": prices.get("total"),
        "tokenizerId": model.tokenizer_id,
        "tokenizerConfig": model.tokenizer_config,
        "isLangfuseManaged": model.project_id is None,
        "createdAt": shapes.iso(model.created_at),
        "prices": {key: {"price": price} for key, price in prices.items()},
        "pricingTiers": [tier.wire() for tier in model.tiers],
    }


def _builtin(model_id: str, services: Any) -> ModelDefinition | None:
    return next((m for m in services.models.builtins if m.id == model_id), None)


@router.get("/api/public/models")
def list_models(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    with services.engine.connect() as conn:
        own = model_store.project_models(conn, principal.project_id)
    builtins = sorted(services.models.builtins, key=lambda m: (m.model_name, m.id))
    everything = [*own, *builtins]
    chunk = everything[(page - 1) * limit : page * limit]
    return json_response(
        {
            "data": [model_shape(m) for m in chunk],
            "meta": shapes.page_meta(page, limit, len(everything)),
        }
    )


@router.get("/api/public/models/{model_id}")
def get_model(model_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        model = model_store.get_model(conn, principal.project_id, model_id)
    model = model or _builtin(model_id, services)
    if model is None:
        raise NotFound("Model not found")
    return json_response(model_shape(model))


@router.post("/api/public/models")
async def create_model(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, MODEL_BODY_LIMIT))
    if isinstance(body, dict) and isinstance(body.get("pricingTiers"), list):
        # Tier ids are always made here (PricingTierInput has none).
        body = {
            **body,
            "pricingTiers": [
                {k: v for k, v in t.items() if k != "id"} if isinstance(t, dict) else t
                for t in body["pricingTiers"]
            ],
        }
    model = parse_model(
        body,
        project_id=principal.project_id,
        model_id=str(uuid.uuid4()),
        now=datetime.now(UTC),
        make_id=lambda: str(uuid.uuid4()),
    )

    def insert(conn: Any) -> None:
        for other in model_store.project_models(conn, principal.project_id):
            if other.model_name == model.model_name and other.start_date == model.start_date:
                raise InvalidInput(
                    "modelName",
                    f"the project already has a model {model.model_name!r} with this startDate "
                    f"(id {other.id}); delete it first or give another startDate",
                )
        model_store.insert_model(conn, model)

    await services.writer.run(insert)
    services.models.invalidate(principal.project_id)
    return json_response(model_shape(model))


@router.delete("/api/public/models/{model_id}", status_code=204)
async def delete_model(
    model_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    project_id = principal.project_id
    deleted = await services.writer.run(
        lambda conn: model_store.delete_model(conn, project_id, model_id)
    )
    if not deleted:
        if _builtin(model_id, services) is not None:
            raise Forbidden(
                "Built-in models cannot be deleted; create a project model with the same name "
                "to override it"
            )
        raise NotFound("Model not found")
    services.models.invalidate(project_id)
    return Response(status_code=204)
