"""Settings: read once from the environment (TRACEHOUSE_* plus Langfuse's own names), then passed down.

No other module reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".tracehouse"


class ConfigError(ValueError):
    """Settings that cannot work together; the message says what to change."""


class Settings(BaseSettings):
    """Every knob of a tracehouse process. Field docs are the user-facing documentation."""

    model_config = SettingsConfigDict(env_prefix="TRACEHOUSE_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface `serve` binds to.")
    port: int = Field(3000, description="Port `serve` listens on (Langfuse's default).")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Folder for the embedded SQLite database and local blobs; created if missing.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TRACEHOUSE_DATABASE_URL", "DATABASE_URL"),
        description="postgresql://… switches the whole store to PostgreSQL; unset = embedded SQLite.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="API processes `serve` runs (each decodes requests in parallel; on SQLite "
        "their writers take turns through a lock file, on PostgreSQL they write side by side).",
    )
    cpu_affinity: Literal["auto", "off"] = Field(
        "auto",
        description="`auto`: a single `serve` process keeps to one CPU, so that its threads "
        "hand the interpreter lock over on one core instead of bouncing between cores (Linux; "
        "7-16 % more ingest throughput measured); `serve --workers N` processes are left to "
        "the operating system. `off`: never pin.",
    )
    max_body_bytes: int = Field(
        16 * 2**20,
        description="Largest accepted request body in bytes, after gzip inflation (413 above "
        "it). Room for a generation with a multi-megabyte input.",
    )
    writer_queue_events: int = Field(
        200_000,
        description="Events that may wait for the writer; beyond this ingestion answers 503 + Retry-After.",
    )
    writer_batch_events: int = Field(
        5_000,
        description="Most events the writer (or a stream worker) commits in one transaction.",
    )
    public_key_rate_per_minute: int = Field(
        600,
        ge=0,
        description="Requests per minute one public key may send alone (`Authorization: Bearer "
        "<public key>`, browser feedback scores), per API process; bursts of a sixth of it pass "
        "at once. Beyond it: 429 + Retry-After. 0 = no limit.",
    )
    auto_migrate: bool = Field(
        True, description="Apply database migrations when `serve` (or `worker`) starts."
    )

    # Scale-out profile: API processes append to a Redis Stream, `tracehouse worker` commits.
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TRACEHOUSE_REDIS_URL", "REDIS_URL"),
        description="redis://… makes ingestion append each accepted request to a Redis Stream "
        "that `tracehouse worker` processes commit to PostgreSQL (needs DATABASE_URL).",
    )
    stream_name: str = Field(
        "tracehouse:ingest",
        description="Redis Stream key of the ingest log (dead letters go to `<name>:dead`).",
    )
    stream_max_backlog: int = Field(
        10_000,
        ge=1,
        description="Requests that may wait in the stream for a worker; beyond this ingestion "
        "answers 503 + Retry-After.",
    )
    worker_batch_entries: int = Field(
        100,
        ge=1,
        description="Most stream entries (requests) a worker reads at once and commits in one "
        "transaction (split further to stay within `writer_batch_events` events).",
    )
    worker_reclaim_idle_ms: int = Field(
        30_000,
        ge=1,
        description="A worker takes over entries another consumer read but has not acknowledged "
        "for this long (a crashed or killed worker).",
    )
    worker_max_attempts: int = Field(
        5,
        ge=1,
        description="Deliveries of an entry that keeps failing before it moves to the dead-letter "
        "stream.",
    )
    worker_commit_delay_ms: int = Field(
        0,
        ge=0,
        description="Testing aid: a worker waits this long between reading a batch and committing "
        "it (simulates a slow database).",
    )

    # Webhooks on prompt changes: every API process runs the delivery job.
    webhook_poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the webhook job looks for due deliveries (it also wakes at once "
        "when a prompt change in its own process queued some).",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Time a webhook receiver has to answer one delivery attempt."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, description="Attempts at a webhook delivery before it is marked failed."
    )
    webhook_backoff_base_s: float = Field(
        2.0,
        gt=0,
        description="Wait before the second attempt of a failed webhook delivery; it doubles "
        "with each further attempt (plus up to 10% jitter).",
    )
    webhook_backoff_max_s: float = Field(
        600.0, gt=0, description="Longest wait between two attempts at a webhook delivery."
    )

    # Headless initialisation, with Langfuse's variable names; applied idempotently at every start.
    init_org_id: str | None = Field(None, validation_alias="LANGFUSE_INIT_ORG_ID")
    init_org_name: str | None = Field(None, validation_alias="LANGFUSE_INIT_ORG_NAME")
    init_project_id: str | None = Field(None, validation_alias="LANGFUSE_INIT_PROJECT_ID")
    init_project_name: str | None = Field(None, validation_alias="LANGFUSE_INIT_PROJECT_NAME")
    init_project_public_key: str | None = Field(
        None, validation_alias="LANGFUSE_INIT_PROJECT_PUBLIC_KEY"
    )
    init_project_secret_key: str | None = Field(
        None, validation_alias="LANGFUSE_INIT_PROJECT_SECRET_KEY"
    )
    init_user_email: str | None = Field(None, validation_alias="LANGFUSE_INIT_USER_EMAIL")
    init_user_name: str | None = Field(None, validation_alias="LANGFUSE_INIT_USER_NAME")
    init_user_password: str | None = Field(None, validation_alias="LANGFUSE_INIT_USER_PASSWORD")

    def check(self) -> None:
        """Raise ``ConfigError`` for settings that cannot work together."""
        if self.redis_url:
            url = self.database_url or ""
            if not url.startswith(("postgresql", "postgres:")):
                raise ConfigError(
                    "REDIS_URL is set, but the scale-out profile (Redis Stream + workers) needs "
                    "PostgreSQL: set DATABASE_URL=postgresql://… as well, or unset REDIS_URL to "
                    "run on "
                    + ("the embedded SQLite store" if not url else "this database")
                    + " with the in-process writer."
                )

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL of the store: PostgreSQL via psycopg 3, or the embedded SQLite file."""
        if self.database_url:
            url = self.database_url
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{self.data_dir / 'tracehouse.db'}"
