"""Builders of Langfuse ingestion events, as the SDKs send them, and of test settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tracehouse.config import Settings

BASE_TIME = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)


def ts(seconds: float = 0) -> str:
    """An ISO timestamp `seconds` after a fixed base time."""
    t = BASE_TIME + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def event(
    type_: str, body: dict[str, Any], at: float = 0, event_id: str | None = None
) -> dict[str, Any]:
    return {"id": event_id or str(uuid.uuid4()), "type": type_, "timestamp": ts(at), "body": body}


def new_id() -> str:
    return str(uuid.uuid4())


def settings_with_key(data_dir: Path, public_key: str, secret_key: str) -> Settings:
    """Settings of a fresh store whose start creates organization "org", project "proj" and
    this API key (Langfuse's headless initialisation)."""
    return Settings(
        data_dir=data_dir,
        LANGFUSE_INIT_ORG_ID="org",
        LANGFUSE_INIT_PROJECT_ID="proj",
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY=public_key,
        LANGFUSE_INIT_PROJECT_SECRET_KEY=secret_key,
    )
