"""Settings: read once from the environment (TRACEHOUSE_* plus Langfuse's own names), then passed down.

No other module reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".tracehouse"


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
    max_body_bytes: int = Field(
        4_718_592, description="Largest accepted request body in bytes (413 above it)."
    )
    writer_queue_events: int = Field(
        200_000,
        description="Events that may wait for the writer; beyond this ingestion answers 503 + Retry-After.",
    )
    writer_batch_events: int = Field(
        5_000, description="Most events the writer commits in one transaction."
    )
    auto_migrate: bool = Field(True, description="Apply database migrations when `serve` starts.")

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
