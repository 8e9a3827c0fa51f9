"""POST /api/public/ingestion: Langfuse JSON batches, answered 207 after the commit."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..auth.keys import Principal
from ..ingest.batch import EventError, ParsedBatch, parse_batch, parse_envelope
from .deps import AnyPrincipal, Services, ServicesDep, json_response, parse_json, read_body
from .score_configs import check_configured_scores
from .scores import limit_public_key

router = APIRouter()

_INLINE_PARSE_BYTES = 256 * 1024


def _parse(body: bytes | bytearray) -> ParsedBatch:
    payload = parse_json(body)
    parse_envelope(payload)  # 400 for a body that is not {"batch": [...]}
    return parse_batch(payload)


INGESTION_PATH = "/api/public/ingestion"


@router.post(INGESTION_PATH)
async def ingest_batch(
    request: Request, services: ServicesDep, principal: AnyPrincipal
) -> Response:
    return await ingest(request, services, principal)


async def ingest(request: Request, services: Services, principal: Principal) -> Response:
    """The route's work, also run by ``IngestFastPath`` (fastpath.py) without the routing."""
    limit_public_key(request, services, principal)  # Bearer (public key alone) only
    body = await read_body(request, services.settings.max_body_bytes)
    if len(body) <= _INLINE_PARSE_BYTES:
        parsed = _parse(body)
    else:
        parsed = await anyio.to_thread.run_sync(_parse, body)

    events = parsed.events
    errors = list(parsed.errors)
    successes = parsed.successes
    if principal.scope != "project":
        # A public key alone may only write scores (Langfuse's reduced access level).
        allowed = [e for e in events if e.kind == "score"]
        denied = {e.event_id for e in events if e.kind != "score"}
        errors += [
            EventError(i, 401, "Authentication error", "Access Scope Denied") for i in denied
        ]
        successes = [s for s in successes if s not in denied]
        events = allowed
    if parsed.configured_scores:  # scores naming a configId are checked against the config
        events, successes, rejected = await check_configured_scores(
            services, principal.project_id, events, successes, parsed.configured_scores
        )
        errors += rejected

    await services.writer.write(principal.project_id, events)
    return json_response(
        {
            "successes": [{"id": i, "status": 201} for i in successes],
            "errors": [
                {"id": e.id, "status": e.status, "message": e.message, "error": e.error}
                for e in errors
            ],
        },
        status_code=207,
    )
