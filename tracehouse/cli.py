"""Command line: `tracehouse serve | worker | migrate | keys create`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from . import __version__
from .config import ConfigError, Settings
from .services.bootstrap import CreatedKeys


def _print_keys(keys: CreatedKeys) -> None:
    click.echo(
        "\n".join(
            [
                "",
                "tracehouse: created a default project with this API key pair (shown once):",
                f"  project id:  {keys.project_id}",
                f"  public key:  {keys.public_key}",
                f"  secret key:  {keys.secret_key}",
                "Point the Langfuse SDK at this server with:",
                f"  LANGFUSE_PUBLIC_KEY={keys.public_key}",
                f"  LANGFUSE_SECRET_KEY={keys.secret_key}",
                "",
            ]
        )
    )
    sys.stdout.flush()


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.group()
@click.version_option(__version__, prog_name="tracehouse")
def main() -> None:
    """tracehouse: LLM tracing, costs, prompts and evals, wire-compatible with Langfuse."""


@main.command()
@click.option(
    "--host", default=None, help="Interface to bind (default 127.0.0.1, or TRACEHOUSE_HOST)."
)
@click.option("--port", default=None, type=int, help="Port (default 3000, or TRACEHOUSE_PORT).")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="API processes (default 1, or TRACEHOUSE_WORKERS).",
)
@click.option("--log-level", default="info", show_default=True)
def serve(host: str | None, port: int | None, workers: int | None, log_level: str) -> None:
    """Run the server (migrates the store first)."""
    import uvicorn

    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    _check(settings)
    click.echo(
        f"tracehouse {__version__} on http://{settings.host}:{settings.port} — "
        f"store: {_store_name(settings)}"
        + (f", {settings.workers} processes" if settings.workers > 1 else "")
        + (f", ingest log: Redis Stream {settings.stream_name!r}" if settings.redis_url else "")
        + f", hot path: {_hot_path()}"
    )
    # uvicorn stops gracefully on SIGTERM (in-flight requests answered, then the lifespan drains
    # the writer) and then re-raises the signal; exit 0 then instead of dying by SIGTERM.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }
    if settings.workers == 1:
        from .app import create_app
        from .processes import keep_to_one_cpu

        if settings.cpu_affinity == "auto":
            keep_to_one_cpu()  # before the app starts its threads, which inherit it

        uvicorn.run(create_app(settings, on_keys_created=_print_keys, settle_heap=True), **common)
        return
    # Several processes: migrate and initialise once here, then let uvicorn start the API
    # processes, which read their settings from the environment (so pass the overrides on).
    from .services.bootstrap import prepare_store
    from .store.db import make_engine

    engine = make_engine(settings)
    created = prepare_store(engine, settings)
    engine.dispose()
    if created is not None:
        _print_keys(created)
    os.environ.update({f"TRACEHOUSE_{k.upper()}": str(v) for k, v in overrides.items()})
    os.environ["TRACEHOUSE_AUTO_MIGRATE"] = "false"
    from .processes import reuse_port_supported, run_workers

    if reuse_port_supported():
        sys.exit(run_workers(settings.workers, common))
    uvicorn.run(
        "tracehouse.app:app_from_environment", factory=True, workers=settings.workers, **common
    )


def _check(settings: Settings) -> None:
    try:
        settings.check()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--name", default=None, help="Consumer name in the group (default: host-pid-random).")
@click.option("--log-level", default="info", show_default=True)
def worker(name: str | None, log_level: str) -> None:
    """Commit the Redis Stream ingest log to PostgreSQL (scale-out profile; run one or more).

    Needs REDIS_URL and DATABASE_URL. Stops on SIGTERM/SIGINT after finishing its batch.
    """
    settings = Settings()
    if not settings.redis_url:
        raise click.ClickException(
            "`tracehouse worker` consumes the Redis Stream ingest log: set REDIS_URL (and "
            "DATABASE_URL=postgresql://…), the same as for `tracehouse serve`"
        )
    _check(settings)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        from .ingest.stream import run_worker
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise click.ClickException(
            f"the worker needs the redis client ({exc}): pip install 'tracehouse[scale]'"
        ) from None

    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(
        f"tracehouse {__version__} worker — stream {settings.stream_name!r} → "
        f"{_store_name(settings)}, hot path: {_hot_path()}"
    )
    from .heap import settle

    settle()  # the worker's own process: see tracehouse.heap
    run_worker(settings, stop, name=name)


def _hot_path() -> str:
    """How the ingestion hot path runs (see tracehouse.compiled); warns of stale builds."""
    from .compiled import build_kind, stale_modules

    stale = stale_modules()
    if stale:
        click.echo(
            "warning: these compiled modules are older than their source, whose edits they "
            f"do not have: {', '.join(stale)}. Build again (TRACEHOUSE_COMPILE=1 pip install "
            "-e .) or delete their .so files.",
            err=True,
        )
    return build_kind()


def _store_name(settings: Settings) -> str:
    return (
        "PostgreSQL"
        if settings.database_url
        else f"SQLite at {settings.data_dir / 'tracehouse.db'}"
    )


@main.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    from .store.db import make_engine
    from .store.db import migrate as run_migrations

    settings = Settings()
    engine = make_engine(settings)
    run_migrations(engine)
    click.echo(f"migrated {_store_name(settings)}")


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--project", "project_id", required=True, help="Project id the key opens.")
@click.option("--note", default=None, help="A note to remember the key by.")
def keys_create(project_id: str, note: str | None) -> None:
    """Create an API key pair for a project; the secret is printed once."""
    from .services.bootstrap import create_api_key
    from .store.db import make_engine
    from .store.db import migrate as run_migrations

    settings = Settings()
    engine = make_engine(settings)
    run_migrations(engine)
    try:
        created = create_api_key(engine, project_id, note=note)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"public key: {created.public_key}\nsecret key: {created.secret_key}")


if __name__ == "__main__":
    main()
