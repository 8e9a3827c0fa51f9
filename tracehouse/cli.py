"""Command line: `tracehouse serve | migrate | keys create`."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

from . import __version__
from .config import Settings
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
@click.option("--log-level", default="info", show_default=True)
def serve(host: str | None, port: int | None, log_level: str) -> None:
    """Run the server (migrates the store first)."""
    import uvicorn

    from .app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    app = create_app(settings, on_keys_created=_print_keys)
    click.echo(
        f"tracehouse {__version__} on http://{settings.host}:{settings.port} — store: {_store_name(settings)}"
    )
    # uvicorn stops gracefully on SIGTERM (in-flight requests answered, then the lifespan drains
    # the writer) and then re-raises the signal; exit 0 then instead of dying by SIGTERM.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


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
