"""Prompts v2: create versions, get by label or version, list, set labels, delete.

Names may contain slashes (folders); clients send them URL-encoded (``a%2Fb``), which arrives
here decoded, so the name parameters are path-typed.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.prompts import check_label, check_name
from ..errors import InvalidInput, TracehouseError
from ..store.prompts import ListFilters
from . import shapes
from .deps import (
    ProjectPrincipal,
    Services,
    ServicesDep,
    json_response,
    parse_json,
    read_body,
)
from .params import page_and_limit, parse_timestamp

router = APIRouter()

PROMPT_BODY_LIMIT = 5_000_000


@router.post("/api/public/v2/prompts")
async def create_prompt(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, PROMPT_BODY_LIMIT))
    created = await services.prompts.create(principal.project_id, body)
    return json_response(created)


def list_filters(
    name: str | None,
    label: str | None,
    tag: str | None,
    from_updated_at: str | None,
    to_updated_at: str | None,
) -> ListFilters:
    """The filters of a prompt list, from wire values (400 naming a bad one)."""
    if label is not None:
        check_label(label, "label", allow_latest=True)
    return ListFilters(
        name=name,
        label=label,
        tag=tag,
        from_updated_at=parse_timestamp("fromUpdatedAt", from_updated_at),
        to_updated_at=parse_timestamp("toUpdatedAt", to_updated_at),
    )


@router.get("/api/public/v2/prompts")
def list_prompts(
    services: ServicesDep,
    principal: ProjectPrincipal,
    name: str | None = None,
    label: str | None = None,
    tag: str | None = None,
    page: int | None = None,
    limit: int | None = None,
    fromUpdatedAt: str | None = None,  # noqa: N803 - wire names
    toUpdatedAt: str | None = None,  # noqa: N803
) -> Response:
    page, limit = page_and_limit(page, limit)
    filters = list_filters(name, label, tag, fromUpdatedAt, toUpdatedAt)
    data, total = services.prompts.list(principal.project_id, filters, page, limit)
    return json_response({"data": data, "meta": shapes.page_meta(page, limit, total)})


@router.patch("/api/public/v2/prompts/{name:path}/versions/{version}")
async def update_prompt_version(
    name: str,
    version: int,
    request: Request,
    services: ServicesDep,
    principal: ProjectPrincipal,
) -> Response:
    check_name(name)
    body = parse_json(await read_body(request, PROMPT_BODY_LIMIT))
    if not isinstance(body, dict) or "newLabels" not in body:
        raise InvalidInput("newLabels", "is required (a list of labels)")
    updated = await services.prompts.set_labels(
        principal.project_id, name, version, body["newLabels"]
    )
    return json_response(updated)


@router.get("/api/public/v2/prompts/{prompt_name:path}")
async def get_prompt(
    prompt_name: str,
    services: ServicesDep,
    principal: ProjectPrincipal,
    version: int | None = None,
    label: str | None = None,
    resolve: bool | None = None,
) -> Response:
    """On the critical path of users' apps: a cache hit is answered without leaving the event
    loop (SQLite); everything else is read and built on a worker thread."""
    check_name(prompt_name, "promptName")
    if label is not None:
        check_label(label, "label", allow_latest=True)
    prompts, project_id = services.prompts, principal.project_id
    generation = None
    if resolve is not False and prompts.inline_reads:
        generation, hit = prompts.cached_json(project_id, prompt_name, version=version, label=label)
        if hit is not None:
            return Response(hit, media_type="application/json")
    body = await anyio.to_thread.run_sync(
        partial(
            prompts.get_json,
            project_id,
            prompt_name,
            version=version,
            label=label,
            resolve=resolve is not False,
            generation=generation,
        )
    )
    return Response(body, media_type="application/json")


@router.delete("/api/public/v2/prompts/{prompt_name:path}")
async def delete_prompt(
    prompt_name: str,
    services: ServicesDep,
    principal: ProjectPrincipal,
    label: str | None = None,
    version: int | None = None,
) -> Response:
    check_name(prompt_name, "promptName")
    await services.prompts.delete(principal.project_id, prompt_name, label=label, version=version)
    return Response(status_code=204)


class PromptFastPath:
    """ASGI middleware answering cache hits of ``GET /api/public/v2/prompts/{name}`` before
    routing and dependency resolution (most of a request's cost once the reply is cached).

    Only the plainest case is taken: a verified key still in the authenticator's cache, a
    valid name and label or version, ``resolve`` absent or true, the store read inline
    (SQLite). Everything else — misses, errors, unknown keys — goes on to the route above,
    which answers exactly as it always does.
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(_GET_PREFIX)
            and self.services.prompts.inline_reads
        ):
            body = self._cached(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _cached(self, scope: Scope) -> bytes | None:
        try:
            header = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
            )
            principal = self.services.authenticator.cached(header, refresh=False)
            if principal is None or principal.scope != "project":
                return None
            name = check_name(scope["path"][len(_GET_PREFIX) :], "promptName")
            params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
            if params.get("resolve", "true").lower() not in ("true", "1"):
                return None
            label = params.get("label")
            if label is not None:
                check_label(label, "label", allow_latest=True)
            version = int(params["version"]) if "version" in params else None
            _, hit = self.services.prompts.cached_json(
                principal.project_id, name, version=version, label=label
            )
            return hit
        except (TracehouseError, ValueError):
            return None  # the route answers (with the right error)


_GET_PREFIX = "/api/public/v2/prompts/"
