"""Ingestion requests taken before routing and dependency resolution.

Exporters and SDKs send a request every second or few per process, often with a handful of
events. For such a request, Starlette's routing, the middleware inside this one and FastAPI's
dependency resolution cost more CPU than the events themselves: taking the request here saved
120-250 µs of the server's 0.95-1.4 ms per one-span OTLP export, and 45-255 µs of 0.7-1.0 ms per
one-event JSON batch (bench/README.md, fourteenth session). ``IngestFastPath`` runs the routes'
own work (``otlp.export``, ``ingestion.ingest``) directly for every POST to their paths, after
the same authentication as their dependencies, and renders errors as the app's handler does:
the replies are the routes' own. Other methods and paths go on to the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth.keys import Principal
from ..errors import TracehouseError
from . import ingestion, otlp
from .deps import Services, error_response, principal_of, require_project

Handler = Callable[[Request, Services, Principal], Awaitable[Response]]

# path -> (the route's work, whether it needs a secret key, as ``ProjectPrincipal`` does)
_ROUTES: dict[str, tuple[Handler, bool]] = {
    otlp.TRACES_PATH: (otlp.export, True),
    ingestion.INGESTION_PATH: (ingestion.ingest, False),
}


class IngestFastPath:
    """ASGI middleware running the ingestion routes' work without the routing (module docstring)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        handler, secret_key_only = route
        request = Request(scope, receive)
        try:
            # as the routes' dependencies do (AnyPrincipal, ProjectPrincipal)
            header = request.headers.get("authorization")
            principal = await principal_of(self.services.authenticator, header)
            if secret_key_only:
                require_project(principal)
            response = await handler(request, self.services, principal)
        except TracehouseError as exc:
            response = error_response(exc)  # as the app's handler renders it
        await response(scope, receive, send)
