"""Typed dependencies shared by the routers: state, auth, bodies and JSON replies."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import anyio
import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection, Engine

from ..auth.keys import Authenticator, Principal
from ..auth.limits import PublicKeyLimiter
from ..config import Settings
from ..domain.events import Event
from ..errors import Forbidden, InvalidInput, PayloadTooLarge, TracehouseError
from ..jsontext import loads_strict
from ..pricing.registry import ModelRegistry
from ..services.prompts import PromptService
from ..store.score_configs import ConfigCache

if TYPE_CHECKING:
    from ..ingest.stream import StreamWriter


class WritePath(Protocol):
    """Where handlers send writes: the in-process ``Writer`` or, scaled out, a ``StreamWriter``."""

    async def write(self, project_id: str, events: Sequence[Event]) -> None:
        """Store (or durably log) the events of one request; returns once accepted."""

    async def run(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn(conn)`` in a database transaction (deletes and other writes)."""


@dataclass
class Services:
    """Everything a request handler may use, built once by ``create_app``."""

    settings: Settings
    engine: Engine
    writer: WritePath
    authenticator: Authenticator
    models: ModelRegistry
    prompts: PromptService
    score_configs: ConfigCache  # the configs scores are checked against (per process)
    public_key_limiter: PublicKeyLimiter  # browser feedback: requests with the public key alone
    stream: StreamWriter | None = None  # the Redis Stream ingest log (scale-out profile)


async def get_services(request: Request) -> Services:
    # async: FastAPI would hand a plain function to a worker thread on every request.
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


async def principal_of(auth: Authenticator, header: str | None) -> Principal:
    """Authenticate Basic pk:sk (full access) or Bearer pk (scores-only access): from the
    cache when it can, else checked in a worker thread."""
    principal = auth.cached(header)
    if principal is None:
        principal = await anyio.to_thread.run_sync(auth.authenticate, header)
    return principal


def require_project(principal: Principal) -> Principal:
    """403 unless the credentials carry the secret key."""
    if principal.scope != "project":
        raise Forbidden("This route needs a secret key (HTTP Basic public_key:secret_key)")
    return principal


async def any_principal(request: Request) -> Principal:
    return await principal_of(
        request.app.state.services.authenticator, request.headers.get("authorization")
    )


async def project_principal(principal: Annotated[Principal, Depends(any_principal)]) -> Principal:
    return require_project(principal)


AnyPrincipal = Annotated[Principal, Depends(any_principal)]
ProjectPrincipal = Annotated[Principal, Depends(project_principal)]


def json_response(
    payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def error_response(exc: TracehouseError) -> Response:
    """The reply to a known error: its status, the error body and its headers."""
    return json_response(exc.body(), exc.status, headers=exc.headers())


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """The request body, decompressed; 413 past ``limit`` bytes (before and after inflating).

    With a Content-Length the chunks go straight into one buffer of that size, so a large body
    is held once (joining a list of chunks would hold it twice). Decoders take the buffer as it
    is (orjson, protobuf and zlib read bytes-like objects).
    """
    declared = request.headers.get("content-length")
    expected = int(declared) if declared and declared.isdigit() else None
    if expected is not None and expected > limit:
        raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
    body: bytes | bytearray
    if expected is not None:
        body = bytearray(expected)
        view = memoryview(body)
        size = 0
        async for chunk in request.stream():
            end = size + len(chunk)
            if end > expected:
                raise InvalidInput("body", "longer than its Content-Length")
            view[size:end] = chunk
            size = end
        view.release()
        if size != expected:
            raise InvalidInput("body", f"{size} bytes received, Content-Length said {expected}")
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput("Content-Encoding", f"unsupported encoding {encoding!r}; use gzip")
    try:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"Decompressed body exceeds the limit of {limit} bytes")
        return out
    except zlib.error as exc:
        raise InvalidInput("body", f"could not decompress {encoding} body: {exc}") from exc


def parse_json(body: bytes | bytearray) -> Any:
    """The JSON body; 400 naming the problem when it is not JSON.

    orjson is the fast path; for bodies over ``_LARGE_JSON_BYTES`` the standard library parses
    instead, because orjson's working memory is many times a large document (65 MB for a 5 MB
    body), where the standard library needs about twice its size. Both refuse NaN/Infinity.
    """
    if len(body) > _LARGE_JSON_BYTES:
        try:
            return loads_strict(body.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput("body", f"malformed JSON: {exc}") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("body", f"malformed JSON: {exc}") from exc


_LARGE_JSON_BYTES = 2**20
