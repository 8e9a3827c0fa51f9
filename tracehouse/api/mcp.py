"""The MCP server at ``/api/public/mcp``: Langfuse's prompt-management tools over MCP.

Streamable HTTP, stateless and with JSON replies (no sessions to keep, so it works behind any
number of API processes), built on the official ``mcp`` package. Every request is authenticated
here, before the MCP transport sees it, with the same project keys as the rest of
``/api/public/*`` (HTTP Basic ``public_key:secret_key``): missing or bad credentials get 401, a
Bearer public key (scores-only access) gets 403. The caller's project id travels to the tools in
the ASGI scope of the request (``ctx.request_context.request.scope``), so every tool works on
the caller's project only.

The tools (``mcp_tools``) call ``PromptService`` (the same use cases as
``/api/public/v2/prompts``); its errors come back as tool errors (``isError: true`` with the
message), not as protocol failures. They and the ``mcp`` package are loaded on the first MCP
request, not at start: the package is about a fifth of an idle process's memory.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import Forbidden, MethodNotAllowed, TracehouseError, Unauthorized
from .deps import Services, json_response

MCP_PATH = "/api/public/mcp"
PROJECT_KEY = "tracehouse.project_id"
"""The ASGI scope key holding the authenticated caller's project id."""

log = logging.getLogger("tracehouse.mcp")


class McpEndpoint:
    """The ASGI app at ``MCP_PATH``: authenticate, then hand the request to the MCP transport.

    ``run()`` is entered in the app's lifespan; it keeps a task that, on the first MCP request,
    imports the tools, builds a session manager and keeps it running until shutdown (the
    manager's task group lives in that one task, as anyio requires). Each run uses a fresh
    manager, so an app may be started more than once (as tests do).
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._manager: Any = None
        self._wanted: anyio.Event | None = None
        self._settled: anyio.Event | None = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._wanted, self._settled = anyio.Event(), anyio.Event()
            group.start_soon(self._serve)
            try:
                yield
            finally:
                self._manager = self._wanted = self._settled = None
                group.cancel_scope.cancel()

    async def _serve(self) -> None:
        assert self._wanted is not None and self._settled is not None
        settled = self._settled
        await self._wanted.wait()
        try:
            tools = await anyio.to_thread.run_sync(
                importlib.import_module, "tracehouse.api.mcp_tools"
            )
            manager = tools.new_manager(self._services)
        except Exception:
            log.exception("the MCP server could not start")
            settled.set()
            return
        async with manager.run():
            self._manager = manager
            settled.set()
            await anyio.sleep_forever()

    async def _started(self) -> Any:
        """The running session manager (started on first use), or None if it cannot run."""
        if self._manager is None and self._wanted is not None and self._settled is not None:
            settled = self._settled
            self._wanted.set()
            await settled.wait()
        return self._manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - routes only see HTTP here
            return
        if scope["method"] != "POST":
            # Stateless: no session to delete and no server-initiated messages, so no GET stream
            # (the transport would hold one open, idle, for as long as the client waits).
            error = MethodNotAllowed("The MCP endpoint takes POST (streamable HTTP, stateless)")
            response = json_response(error.body(), error.status, headers={"Allow": "POST"})
            await response(scope, receive, send)
            return
        try:
            project_id = await self._authenticate(Headers(scope=scope).get("authorization"))
        except TracehouseError as exc:
            headers = exc.headers()
            if isinstance(exc, Unauthorized):
                headers["WWW-Authenticate"] = 'Basic realm="tracehouse"'
            await json_response(exc.body(), exc.status, headers=headers)(scope, receive, send)
            return
        manager = await self._started()
        if manager is None:
            body = {"message": "The MCP server is not running", "error": "ServiceUnavailableError"}
            await json_response(body, 503)(scope, receive, send)
            return
        await manager.handle_request({**scope, PROJECT_KEY: project_id}, receive, send)

    async def _authenticate(self, header: str | None) -> str:
        auth = self._services.authenticator
        principal = auth.cached(header)
        if principal is None:
            principal = await anyio.to_thread.run_sync(auth.authenticate, header)
        if principal.scope != "project":
            raise Forbidden("The MCP server needs a secret key (HTTP Basic public_key:secret_key)")
        return principal.project_id


def mount(app: FastAPI, services: Services) -> McpEndpoint:
    """Serve the MCP endpoint at exactly ``MCP_PATH`` (no redirect to a trailing slash).

    Enter the returned endpoint's ``run()`` in the app's lifespan.
    """
    endpoint = McpEndpoint(services)
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, include_in_schema=False))
    return endpoint
