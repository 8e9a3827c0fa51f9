"""The composition root: ``create_app(settings)`` builds the ASGI app and everything it uses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, heap
from .api import annotation_queues as annotation_queue_api
from .api import comments as comment_api
from .api import datasets as dataset_api
from .api import experiments as experiment_api
from .api import (
    health,
    ingestion,
    models,
    observations,
    otlp,
    prompt_metrics,
    prompts,
    scores,
    sessions,
    traces,
)
from .api import score_configs as score_config_api
from .api import webhooks as webhook_api
from .api.deps import Services, error_response, json_response
from .api.fastpath import IngestFastPath
from .api.mcp import mount as mount_mcp
from .auth.keys import Authenticator
from .auth.limits import PublicKeyLimiter
from .config import ConfigError, Settings
from .errors import TracehouseError
from .ingest.pipeline import Writer
from .jobs.webhooks import WebhookJob
from .pricing.builtin import builtin_models
from .pricing.registry import ModelRegistry
from .services.bootstrap import CreatedKeys, prepare_store
from .services.prompts import PromptService
from .store import models as model_store
from .store.db import make_engine
from .store.score_configs import CONFIG_CACHE_TTL_S, ConfigCache

if TYPE_CHECKING:
    from .ingest.stream import StreamWriter

log = logging.getLogger("tracehouse")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TracehouseError)
    async def _known(_request: Request, exc: TracehouseError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg')}")
        return json_response(
            {
                "message": "Invalid request data: " + "; ".join(problems),
                "error": "InvalidRequestError",
            },
            400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        names = {404: "LangfuseNotFoundError", 405: "MethodNotAllowedError"}
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        return json_response(
            {"message": message, "error": names.get(exc.status_code, "HTTPError")},
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(
            {"message": "Internal Server Error", "error": "InternalServerError"}, 500
        )


def app_from_environment() -> FastAPI:
    """The app of one ``serve --workers N`` process: settings from the environment only."""
    return create_app(Settings(), settle_heap=True)


def _stream_writer(settings: Settings, writer: Writer) -> StreamWriter:
    try:
        from .ingest.stream import StreamWriter
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            f"REDIS_URL needs the redis client ({exc}): pip install 'tracehouse[scale]'"
        ) from exc
    return StreamWriter(settings, writer)


def create_app(
    settings: Settings,
    *,
    on_keys_created: Callable[[CreatedKeys], Any] | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """Build the app. The lifespan migrates, initialises, then starts the writer — in that order.

    With ``settings.redis_url`` (scale-out profile) accepted events go to a Redis Stream that
    ``tracehouse worker`` processes commit; other writes still run on the in-process writer.
    Raises ``ConfigError`` for settings that cannot work together (Redis without PostgreSQL).
    ``settle_heap``: a server process of its own (not an app inside tests) tunes the garbage
    collector once started (see ``tracehouse.heap``).
    """
    settings.check()
    engine = make_engine(settings)
    model_registry = ModelRegistry(builtin_models(), model_store.loader(engine))
    writer = Writer(
        engine,
        max_queue_events=settings.writer_queue_events,
        max_batch_events=settings.writer_batch_events,
        models=model_registry,
    )
    stream = _stream_writer(settings, writer) if settings.redis_url else None
    write_path = stream or writer
    webhook_job = WebhookJob(engine, write_path.run, settings)
    services = Services(
        settings=settings,
        engine=engine,
        writer=write_path,
        stream=stream,
        authenticator=Authenticator(engine),
        models=model_registry,
        # Prompt writes queue webhook deliveries: the job looks for them right after each.
        prompts=PromptService(engine, webhook_job.waking(write_path.run)),
        score_configs=ConfigCache(engine, ttl_s=CONFIG_CACHE_TTL_S),
        public_key_limiter=PublicKeyLimiter(settings.public_key_rate_per_minute),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(engine.dispose)
            stack.callback(services.prompts.close)
            created = await anyio.to_thread.run_sync(prepare_store, engine, settings)
            if created is not None and on_keys_created is not None:
                on_keys_created(created)
            writer.start()
            # Stopping drains the queue: everything already accepted is committed first.
            stack.callback(writer.stop)
            if stream is not None:
                await stream.start()
                stack.push_async_callback(stream.stop)
            await webhook_job.start()  # sends queued prompt-change webhooks
            stack.push_async_callback(webhook_job.stop)
            await stack.enter_async_context(mcp_endpoint.run())  # the MCP server
            if settle_heap:
                heap.settle()
            yield

    app = FastAPI(
        title="tracehouse",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.services = services
    app.state.webhook_job = webhook_job
    _install_error_handlers(app)
    app.add_middleware(prompts.PromptFastPath, services=services)
    app.add_middleware(IngestFastPath, services=services)
    for module in (
        health,
        ingestion,
        otlp,
        traces,
        observations,
        sessions,
        scores,
        models,
        prompts,
        prompt_metrics,
    ):
        app.include_router(module.router)
    app.include_router(webhook_api.router)
    app.include_router(dataset_api.router)
    app.include_router(score_config_api.router)
    app.include_router(experiment_api.router)
    app.include_router(comment_api.router)
    app.include_router(annotation_queue_api.router)
    mcp_endpoint = mount_mcp(app, services)
    return app
