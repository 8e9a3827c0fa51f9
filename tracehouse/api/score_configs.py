"""Score configs: create, list, get, update (``/api/public/score-configs``); and the check of
scores that name a ``configId`` against their config, shared by ``POST /api/public/scores`` and
``POST /api/public/ingestion``.

Configs are read through a per-project cache (``store.score_configs.ConfigCache``): one query
per project per few seconds, however many scores a request holds; writes made here invalidate
it at once. Requests whose scores name no config never read it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from ..domain.events import Event
from ..domain.score_configs import ScoreConfig, apply_config, new_config, updated_config
from ..errors import InvalidInput, NotFound
from ..ingest.batch import EventError
from ..store import score_configs as config_store
from . import shapes
from .deps import ProjectPrincipal, Services, ServicesDep, json_response, parse_json, read_body
from .params import page_and_limit

router = APIRouter()

CONFIG_BODY_LIMIT = 1_000_000


def config_shape(config: ScoreConfig) -> dict[str, Any]:
    """The public API's ``ScoreConfig``."""
    return {
        "id": config.id,
        "name": config.name,
        "createdAt": shapes.iso(config.created_at),
        "updatedAt": shapes.iso(config.updated_at),
        "projectId": config.project_id,
        "dataType": config.data_type,
        "isArchived": config.is_archived,
        "minValue": config.min_value,
        "maxValue": config.max_value,
        "categories": config.categories,
        "description": config.description,
    }


def _cache(services: Services) -> config_store.ConfigCache:
    return services.score_configs


# -- routes --------------------------------------------------------------------------------------


@router.post("/api/public/score-configs")
async def create_config(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, CONFIG_BODY_LIMIT))
    config = new_config(
        body, project_id=principal.project_id, config_id=str(uuid.uuid4()), now=datetime.now(UTC)
    )
    await services.writer.run(lambda conn: config_store.insert_config(conn, config))
    _cache(services).invalidate(principal.project_id)
    return json_response(config_shape(config))


@router.get("/api/public/score-configs")
def list_configs(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    with services.engine.connect() as conn:
        configs, total = config_store.list_configs(
            conn, principal.project_id, page=page, limit=limit
        )
    return json_response(
        {"data": [config_shape(c) for c in configs], "meta": shapes.page_meta(page, limit, total)}
    )


@router.get("/api/public/score-configs/{config_id}")
def get_config(config_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        config = config_store.get_config(conn, principal.project_id, config_id)
    if config is None:
        raise NotFound("Score config not found")
    return json_response(config_shape(config))


@router.patch("/api/public/score-configs/{config_id}")
async def update_config(
    config_id: str, request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, CONFIG_BODY_LIMIT))
    pid = principal.project_id

    def update(conn: Connection) -> ScoreConfig:
        config = config_store.get_config(conn, pid, config_id)
        if config is None:
            raise NotFound("Score config not found")
        changed = updated_config(config, body, now=datetime.now(UTC))
        config_store.update_config(conn, changed)
        return changed

    changed: ScoreConfig = await services.writer.run(update)
    _cache(services).invalidate(pid)
    return json_response(config_shape(changed))


# -- scores against their config -----------------------------------------------------------------


async def project_configs(
    services: Services, project_id: str, config_ids: set[str]
) -> dict[str, ScoreConfig]:
    """The project's configs, enough to resolve ``config_ids``.

    A fresh cached snapshot costs no I/O. An id missing from a cached snapshot triggers one
    re-read (the config may have just been created by another process).
    """
    cache = _cache(services)
    configs = cache.cached(project_id)
    if configs is not None and config_ids <= configs.keys():
        return configs
    if configs is not None:
        cache.invalidate(project_id)
    return await anyio.to_thread.run_sync(cache.get, project_id)


def _ingestion_error(event: Event, exc: InvalidInput) -> EventError:
    """Name the field by its ingestion path (``body.value``), as the parser's errors do."""
    rule = exc.message.removeprefix(f"{exc.field}: ") if exc.field else exc.message
    text = f"body.{exc.field}: {rule}" if exc.field else rule
    return EventError(event.event_id, 400, "Invalid request data", text)


async def check_configured_scores(
    services: Services,
    project_id: str,
    events: list[Event],
    successes: list[str],
    configured: Sequence[tuple[Event, Any]],
) -> tuple[list[Event], list[str], list[EventError]]:
    """Check the batch's scores that name a configId (``ParsedBatch.configured_scores``).

    Returns the events and success ids without the rejected scores, plus one 400 error entry per
    rejected score. Valid scores are completed in place (data type, category value, ...).
    """
    wanted = {e.fields["config_id"] for e, _ in configured}
    configs = await project_configs(services, project_id, wanted)
    rejected: list[EventError] = []
    dropped: set[int] = set()
    for event, sent_data_type in configured:
        config_id = event.fields["config_id"]
        try:
            apply_config(event.fields, sent_data_type, configs.get(config_id), config_id)
        except InvalidInput as exc:
            rejected.append(_ingestion_error(event, exc))
            dropped.add(id(event))
    if not rejected:
        return events, successes, []
    remove = Counter(e.id for e in rejected)
    kept_ids = []
    for envelope_id in successes:
        if remove[envelope_id]:
            remove[envelope_id] -= 1
            continue
        kept_ids.append(envelope_id)
    return [e for e in events if id(e) not in dropped], kept_ids, rejected
