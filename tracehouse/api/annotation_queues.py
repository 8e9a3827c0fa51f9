"""Annotation queues: queues, their items (traces, observations, sessions to annotate) and user
assignments, as Langfuse's public API has them, plus ``DELETE /annotation-queues/{queueId}``.

A queue names the score configs its annotators score with (all must be score configs of the
project). An item's object must exist in the project. Setting an item to COMPLETED records when
(``completedAt``, kept if it was already completed); setting it back to PENDING clears it. The
item's scores are the scores posted with the queue's id (``queueId``) on the item's object; they
live in the scores table and stay there when the item or the queue is deleted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import InvalidInput, NotFound
from ..store import annotation_queues as queue_store
from ..store import comments as comment_store
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import page_and_limit

router = APIRouter()

QUEUE_BODY_LIMIT = 1_000_000
BASE = "/api/public/annotation-queues"


def queue_shape(row: dict[str, Any]) -> dict[str, Any]:
    """The ``AnnotationQueue`` of the public API."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "scoreConfigIds": list(row["score_config_ids"] or []),
        "createdAt": shapes.iso(row["created_at"]),
        "updatedAt": shapes.iso(row["updated_at"]),
    }


def item_shape(row: dict[str, Any]) -> dict[str, Any]:
    """The ``AnnotationQueueItem`` of the public API."""
    return {
        "id": row["id"],
        "queueId": row["queue_id"],
        "objectId": row["object_id"],
        "objectType": row["object_type"],
        "status": row["status"],
        "completedAt": shapes.iso(row["completed_at"]),
        "createdAt": shapes.iso(row["created_at"]),
        "updatedAt": shapes.iso(row["updated_at"]),
    }


# -- body helpers ------------------------------------------------------------------------------


async def _body(request: Request, what: str) -> dict[str, Any]:
    body = parse_json(await read_body(request, QUEUE_BODY_LIMIT))
    if not isinstance(body, dict):
        raise InvalidInput("body", f"expected a JSON object ({what})")
    return body


def _string(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidInput(name, "must not be empty")
    return value


def _one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise InvalidInput(name, f"unknown value {value!r}; use one of {', '.join(allowed)}")
    return value


def _queue_or_404(conn: Any, project_id: str, queue_id: str) -> dict[str, Any]:
    queue = queue_store.get_queue(conn, project_id, queue_id)
    if queue is None:
        raise NotFound("Annotation queue not found")
    return queue


def _item_or_404(conn: Any, project_id: str, queue_id: str, item_id: str) -> dict[str, Any]:
    _queue_or_404(conn, project_id, queue_id)
    item = queue_store.get_item(conn, project_id, queue_id, item_id)
    if item is None:
        raise NotFound("Annotation queue item not found")
    return item


# -- queues ------------------------------------------------------------------------------------


@router.get(BASE)
def list_queues(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    with services.engine.connect() as conn:
        rows, total = queue_store.list_queues(conn, principal.project_id, page=page, limit=limit)
    return json_response(
        {"data": [queue_shape(r) for r in rows], "meta": shapes.page_meta(page, limit, total)}
    )


@router.post(BASE)
async def create_queue(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = await _body(request, "CreateAnnotationQueueRequest")
    name = _string(body, "name", required=True)
    assert name is not None
    description = _string(body, "description", required=False)
    config_ids = body.get("scoreConfigIds")
    if config_ids is None:
        raise InvalidInput("scoreConfigIds", "is required")
    if not isinstance(config_ids, list) or not all(isinstance(i, str) for i in config_ids):
        raise InvalidInput("scoreConfigIds", "must be a list of score config ids (strings)")
    if not config_ids:
        raise InvalidInput("scoreConfigIds", "must name at least one score config")
    config_ids = list(dict.fromkeys(config_ids))  # without repeats, in the order given
    pid = principal.project_id
    queue_id = str(uuid.uuid4())
    now = datetime.now(UTC)

    def insert(conn: Any) -> dict[str, Any] | None:
        missing = queue_store.missing_score_configs(conn, pid, config_ids)
        if missing:
            raise InvalidInput(
                "scoreConfigIds", f"no score config with id(s) {missing} in this project"
            )
        created = queue_store.insert_queue(
            conn,
            project_id=pid,
            queue_id=queue_id,
            name=name,
            description=description,
            score_config_ids=config_ids,
            now=now,
        )
        if not created:
            raise InvalidInput("name", f"the project already has a queue named {name!r}")
        return queue_store.get_queue(conn, pid, queue_id)

    row = await services.writer.run(insert)
    return json_response(queue_shape(row))


@router.get(BASE + "/{queue_id}")
def get_queue(queue_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        queue = _queue_or_404(conn, principal.project_id, queue_id)
    return json_response(queue_shape(queue))


@router.delete(BASE + "/{queue_id}")
async def delete_queue(
    queue_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    """A tracehouse addition: the queue goes with its items and assignments (scores stay)."""
    pid = principal.project_id
    deleted = await services.writer.run(lambda conn: queue_store.delete_queue(conn, pid, queue_id))
    if not deleted:
        raise NotFound("Annotation queue not found")
    return json_response({"success": True, "message": "Annotation queue deleted successfully"})


# -- items -------------------------------------------------------------------------------------


@router.get(BASE + "/{queue_id}/items")
def list_items(
    queue_id: str,
    services: ServicesDep,
    principal: ProjectPrincipal,
    status: str | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    wanted = _one_of("status", status or None, queue_store.QUEUE_STATUSES)
    with services.engine.connect() as conn:
        _queue_or_404(conn, principal.project_id, queue_id)
        rows, total = queue_store.list_items(
            conn, principal.project_id, queue_id, status=wanted, page=page, limit=limit
        )
    return json_response(
        {"data": [item_shape(r) for r in rows], "meta": shapes.page_meta(page, limit, total)}
    )


@router.post(BASE + "/{queue_id}/items")
async def create_item(
    queue_id: str, request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = await _body(request, "CreateAnnotationQueueItemRequest")
    object_id = _string(body, "objectId", required=True)
    object_type = _one_of(
        "objectType",
        _string(body, "objectType", required=True),
        queue_store.QUEUE_OBJECT_TYPES,
    )
    status = _one_of("status", _string(body, "status", required=False), queue_store.QUEUE_STATUSES)
    assert object_id is not None and object_type is not None
    pid = principal.project_id
    item_id = str(uuid.uuid4())
    now = datetime.now(UTC)

    def insert(conn: Any) -> dict[str, Any]:
        _queue_or_404(conn, pid, queue_id)
        if not comment_store.object_exists(conn, pid, object_type, object_id):
            raise NotFound(f"No {object_type} with id {object_id!r} in this project")
        queue_store.insert_item(
            conn,
            project_id=pid,
            item_id=item_id,
            queue_id=queue_id,
            object_id=object_id,
            object_type=object_type,
            status=status or "PENDING",
            now=now,
        )
        return _item_or_404(conn, pid, queue_id, item_id)

    return json_response(item_shape(await services.writer.run(insert)))


@router.get(BASE + "/{queue_id}/items/{item_id}")
def get_item(
    queue_id: str, item_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    with services.engine.connect() as conn:
        item = _item_or_404(conn, principal.project_id, queue_id, item_id)
    return json_response(item_shape(item))


@router.patch(BASE + "/{queue_id}/items/{item_id}")
async def update_item(
    queue_id: str,
    item_id: str,
    request: Request,
    services: ServicesDep,
    principal: ProjectPrincipal,
) -> Response:
    body = await _body(request, "UpdateAnnotationQueueItemRequest")
    unknown = sorted(set(body) - {"status"})
    if unknown:
        raise InvalidInput(unknown[0], "cannot be updated; only status can")
    status = _one_of("status", _string(body, "status", required=False), queue_store.QUEUE_STATUSES)
    pid = principal.project_id
    now = datetime.now(UTC)

    def update(conn: Any) -> dict[str, Any]:
        _item_or_404(conn, pid, queue_id, item_id)
        if status is not None:
            queue_store.set_item_status(conn, pid, queue_id, item_id, status, now)
        return _item_or_404(conn, pid, queue_id, item_id)

    return json_response(item_shape(await services.writer.run(update)))


@router.delete(BASE + "/{queue_id}/items/{item_id}")
async def delete_item(
    queue_id: str, item_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    pid = principal.project_id

    def remove(conn: Any) -> None:
        _item_or_404(conn, pid, queue_id, item_id)
        queue_store.delete_item(conn, pid, queue_id, item_id)

    await services.writer.run(remove)
    return json_response({"success": True, "message": "Annotation queue item deleted successfully"})


# -- assignments -------------------------------------------------------------------------------


@router.post(BASE + "/{queue_id}/assignments")
async def create_assignment(
    queue_id: str, request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = await _body(request, "AnnotationQueueAssignmentRequest")
    user_id = _string(body, "userId", required=True)
    assert user_id is not None
    pid = principal.project_id
    now = datetime.now(UTC)

    def assign(conn: Any) -> None:
        _queue_or_404(conn, pid, queue_id)
        if not queue_store.is_project_member(conn, pid, user_id):
            if not queue_store.user_exists(conn, user_id):
                raise NotFound(f"User {user_id!r} not found")
            raise InvalidInput(
                "userId",
                f"user {user_id!r} is not a member of the organization that owns this project",
            )
        queue_store.put_assignment(conn, pid, queue_id, user_id, now)

    await services.writer.run(assign)
    return json_response({"userId": user_id, "queueId": queue_id, "projectId": pid})


@router.delete(BASE + "/{queue_id}/assignments")
async def delete_assignment(
    queue_id: str, request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    """Removing an assignment that does not exist is a success too (as in Langfuse)."""
    body = await _body(request, "AnnotationQueueAssignmentRequest")
    user_id = _string(body, "userId", required=True)
    assert user_id is not None
    pid = principal.project_id

    def unassign(conn: Any) -> None:
        _queue_or_404(conn, pid, queue_id)
        queue_store.delete_assignment(conn, pid, queue_id, user_id)

    await services.writer.run(unassign)
    return json_response({"success": True})
