"""Builders of Langfuse ingestion events, as the SDKs send them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

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
