"""Comments: create one on a trace, observation, session or prompt version; list; get one.

As in Langfuse, the object a comment points at must exist in the caller's project (404
otherwise), the content is trimmed and must hold 1 to 5000 characters, and ``authorUserId`` is
stored as given. The body's ``projectId`` must be the project of the API key (403 otherwise).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import Forbidden, InvalidInput, NotFound
from ..store import comments as comment_store
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import page_and_limit

router = APIRouter()

MAX_COMMENT_CHARS = 5000  # Langfuse's limit (CreateCommentRequest.content)
COMMENT_BODY_LIMIT = 1_000_000


def comment_shape(row: dict[str, Any]) -> dict[str, Any]:
    """The ``Comment`` of the public API."""
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "createdAt": shapes.iso(row["created_at"]),
        "updatedAt": shapes.iso(row["updated_at"]),
        "objectType": row["object_type"],
        "objectId": row["object_id"],
        "content": row["content"],
        "authorUserId": row["author_user_id"],
    }


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


def object_type_of(name: str, raw: str | None) -> str | None:
    """A CommentObjectType (case-insensitive, stored upper case); 400 naming ``name``."""
    if raw is None or raw == "":
        return None
    value = raw.strip().upper()
    if value not in comment_store.COMMENT_OBJECT_TYPES:
        allowed = ", ".join(comment_store.COMMENT_OBJECT_TYPES)
        raise InvalidInput(name, f"unknown object type {raw!r}; use one of {allowed}")
    return value


@router.post("/api/public/comments")
async def create_comment(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, COMMENT_BODY_LIMIT))
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object (CreateCommentRequest)")
    project_id = _string(body, "projectId", required=True)
    if project_id != principal.project_id:
        raise Forbidden(
            f"projectId {project_id!r} is not the project of this API key "
            f"({principal.project_id!r})"
        )
    object_type = object_type_of("objectType", _string(body, "objectType", required=True))
    assert object_type is not None
    object_id = _string(body, "objectId", required=True)
    assert object_id is not None
    content = (_string(body, "content", required=True) or "").strip()
    if len(content) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            "content", f"has {len(content)} characters; at most {MAX_COMMENT_CHARS} are allowed"
        )
    author_user_id = _string(body, "authorUserId", required=False)
    comment_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    pid = principal.project_id

    def insert(conn: Any) -> None:
        if not comment_store.object_exists(conn, pid, object_type, object_id):
            raise NotFound(f"No {object_type} with id {object_id!r} in this project")
        comment_store.insert_comment(
            conn,
            project_id=pid,
            comment_id=comment_id,
            object_type=object_type,
            object_id=object_id,
            content=content,
            author_user_id=author_user_id,
            now=now,
        )

    await services.writer.run(insert)
    return json_response({"id": comment_id})


@router.get("/api/public/comments")
def list_comments(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
    objectType: str | None = None,
    objectId: str | None = None,
    authorUserId: str | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    object_type = object_type_of("objectType", objectType)
    if objectId and object_type is None:
        raise InvalidInput("objectId", "requires objectType (TRACE, OBSERVATION, SESSION, PROMPT)")
    with services.engine.connect() as conn:
        rows, total = comment_store.list_comments(
            conn,
            principal.project_id,
            object_type=object_type,
            object_id=objectId or None,
            author_user_id=authorUserId or None,
            page=page,
            limit=limit,
        )
    return json_response(
        {"data": [comment_shape(r) for r in rows], "meta": shapes.page_meta(page, limit, total)}
    )


@router.get("/api/public/comments/{comment_id}")
def get_comment(comment_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        row = comment_store.get_comment(conn, principal.project_id, comment_id)
    if row is None:
        raise NotFound("Comment not found")
    return json_response(comment_shape(row))
