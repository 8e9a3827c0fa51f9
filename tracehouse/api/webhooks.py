"""Webhooks on prompt changes: configure them per project, rotate their secret, read their log.

A webhook receives a signed JSON POST when a prompt version of the project is created, updated
(labels or tags) or deleted; ``tracehouse.jobs.webhooks`` sends them. The signing secret is
shown in full only when it is made (create, rotate-secret); every other reply masks it.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import InvalidInput, NotFound
from ..store import webhooks as store
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import page_and_limit

router = APIRouter()

WEBHOOK_BODY_LIMIT = 100_000
SECRET_PREFIX = "lf-whsec_"  # Langfuse's signing secrets start like this
RESERVED_HEADERS = {
    "content-type",
    "x-langfuse-signature",
    "user-agent",
    # set by the HTTP client itself
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
}
DELIVERY_STATUSES = ("pending", "delivered", "failed")
_FIELDS = {"url", "name", "events", "actions", "promptNames", "headers", "active"}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP header name (RFC 9110 token)
MAX_URL = 2048
MAX_NAME = 200
MAX_HEADERS = 50


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def masked(secret: str) -> str:
    return secret[: len(SECRET_PREFIX)] + "…" + secret[-4:]


def webhook_shape(hook: store.Webhook, *, reveal: bool = False) -> dict[str, Any]:
    """The webhook as the API shows it (``reveal``: the secret in full)."""
    return {
        "id": hook.id,
        "projectId": hook.project_id,
        "name": hook.name,
        "url": hook.url,
        "events": hook.actions,
        "promptNames": hook.prompt_names,
        "headers": hook.headers,
        "active": hook.active,
        "secret": hook.secret if reveal else masked(hook.secret),
        "createdAt": shapes.iso(hook.created_at),
        "updatedAt": shapes.iso(hook.updated_at),
    }


def delivery_shape(d: store.Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhookId": d.webhook_id,
        "action": d.action,
        "status": d.status,
        "attempts": d.attempts,
        "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "createdAt": shapes.iso(d.created_at),
        "deliveredAt": shapes.iso(d.delivered_at),
        "nextAttemptAt": shapes.iso(d.next_attempt_at) if d.status == "pending" else None,
        "payload": orjson.loads(d.payload),
    }


# --- input -----------------------------------------------------------------------------------


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("url", "is required: the http(s) URL deliveries are POSTed to")
    url = value.strip()
    if len(url) > MAX_URL:
        raise InvalidInput("url", f"must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidInput("url", f"is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput("url", f"must be an http:// or https:// URL, not {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidInput("url", "has no host")
    if any(ch.isspace() for ch in url):
        raise InvalidInput("url", "must not contain whitespace")
    return url


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("name", "must be a string")
    if len(value) > MAX_NAME:
        raise InvalidInput("name", f"must be at most {MAX_NAME} characters")
    return value.strip()


def _events(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(field, f"must be a non-empty list of {', '.join(store.ACTIONS)}")
    for item in value:
        if item not in store.ACTIONS:
            raise InvalidInput(field, f"unknown event {item!r}; use {', '.join(store.ACTIONS)}")
    return [a for a in store.ACTIONS if a in value]


def _prompt_names(value: Any) -> list[str] | None:
    if value is None:
        return None  # every prompt
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            "promptNames", "must be a non-empty list of prompt names, or null for every prompt"
        )
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput("promptNames", "must hold non-empty strings")
        if item not in names:
            names.append(item)
    return names


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("headers", "must be an object of header names to string values")
    if len(value) > MAX_HEADERS:
        raise InvalidInput("headers", f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for key, item in value.items():
        if not _TOKEN.match(key):
            raise InvalidInput("headers", f"{key!r} is not a valid header name")
        lower = key.lower()
        if lower in RESERVED_HEADERS:
            raise InvalidInput("headers", f"{key!r} is set by tracehouse and cannot be overridden")
        if lower in seen:
            raise InvalidInput("headers", f"{key!r} is given twice")
        seen.add(lower)
        if not isinstance(item, str):
            raise InvalidInput("headers", f"the value of {key!r} must be a string")
        if "\r" in item or "\n" in item or "\0" in item:
            raise InvalidInput("headers", f"the value of {key!r} must not contain line breaks")
    return dict(value)


def _active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("active", "must be true or false")
    return value


def _parse(body: Any, *, partial: bool) -> dict[str, Any]:
    """The body as column values; only the given fields when ``partial``."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidInput(
            unknown[0], f"unknown field; a webhook has {', '.join(sorted(_FIELDS - {'actions'}))}"
        )
    if "events" in body and "actions" in body:
        raise InvalidInput("events", "give events or actions (its alias), not both")
    values: dict[str, Any] = {}
    if "url" in body or not partial:
        values["url"] = _url(body.get("url"))
    if body.get("name") is not None:
        values["name"] = _name(body["name"])
    elif "name" in body and partial:
        raise InvalidInput("name", "must be a string")
    for field in ("events", "actions"):
        if field in body:
            values["actions"] = _events(body[field], field)
    if "promptNames" in body:
        values["prompt_names"] = _prompt_names(body["promptNames"])
    if "headers" in body:
        values["headers"] = _headers(body["headers"])
    if "active" in body:
        values["active"] = _active(body["active"])
    return values


async def _body(request: Request) -> Any:
    return parse_json(await read_body(request, WEBHOOK_BODY_LIMIT))


def _not_found() -> NotFound:
    return NotFound("Webhook not found")


# --- routes ----------------------------------------------------------------------------------


@router.post("/api/public/webhooks", status_code=201)
async def create_webhook(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    values = _parse(await _body(request), partial=False)
    now = datetime.now(UTC)
    hook = store.Webhook(
        project_id=principal.project_id,
        id=str(uuid.uuid4()),
        name=values.get("name") or urlsplit(values["url"]).netloc,
        url=values["url"],
        secret=new_secret(),
        headers=values.get("headers", {}),
        actions=values.get("actions", list(store.ACTIONS)),
        prompt_names=values.get("prompt_names"),
        active=values.get("active", True),
        created_at=now,
        updated_at=now,
    )
    await services.writer.run(lambda conn: store.insert_webhook(conn, hook))
    return json_response(webhook_shape(hook, reveal=True), 201)


@router.get("/api/public/webhooks")
def list_webhooks(services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        hooks = store.list_webhooks(conn, principal.project_id)
    return json_response({"data": [webhook_shape(h) for h in hooks]})


@router.get("/api/public/webhooks/{webhook_id}")
def get_webhook(webhook_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        hook = store.get_webhook(conn, principal.project_id, webhook_id)
    if hook is None:
        raise _not_found()
    return json_response(webhook_shape(hook))


@router.patch("/api/public/webhooks/{webhook_id}")
async def update_webhook(
    webhook_id: str, request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    values = _parse(await _body(request), partial=True)
    values["updated_at"] = datetime.now(UTC)
    project_id = principal.project_id
    hook = await services.writer.run(
        lambda conn: store.update_webhook(conn, project_id, webhook_id, values)
    )
    if hook is None:
        raise _not_found()
    return json_response(webhook_shape(hook))


@router.delete("/api/public/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    project_id = principal.project_id
    deleted = await services.writer.run(
        lambda conn: store.delete_webhook(conn, project_id, webhook_id)
    )
    if not deleted:
        raise _not_found()
    return Response(status_code=204)


@router.post("/api/public/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    webhook_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    """A new signing secret, shown in full this once; the old one stops working at once."""
    values = {"secret": new_secret(), "updated_at": datetime.now(UTC)}
    project_id = principal.project_id
    hook = await services.writer.run(
        lambda conn: store.update_webhook(conn, project_id, webhook_id, values)
    )
    if hook is None:
        raise _not_found()
    return json_response(webhook_shape(hook, reveal=True))


@router.get("/api/public/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: str,
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
    status: str | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
    with services.engine.connect() as conn:
        if store.get_webhook(conn, principal.project_id, webhook_id) is None:
            raise _not_found()
        rows, total = store.list_deliveries(
            conn, principal.project_id, webhook_id, page, limit, status
        )
    return json_response(
        {"data": [delivery_shape(d) for d in rows], "meta": shapes.page_meta(page, limit, total)}
    )
