"""Prompt usage metrics per version, as the public API and the UI show them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from ..errors import NotFound
from ..store import prompt_metrics as store
from ..store.prompt_metrics import VersionMetrics
from .prompts import iso


def version_json(name: str, m: VersionMetrics) -> dict[str, Any]:
    return {
        "promptName": name,
        "promptVersion": m.version,
        "observationCount": m.observation_count,
        "firstUsedAt": None if m.first_used_at is None else iso(m.first_used_at),
        "lastUsedAt": None if m.last_used_at is None else iso(m.last_used_at),
        "avgLatencySeconds": m.avg_latency_seconds,
        "totalInputUsage": m.total_input_usage,
        "totalOutputUsage": m.total_output_usage,
        "avgInputUsage": m.avg_input_usage,
        "avgOutputUsage": m.avg_output_usage,
        "totalCost": m.total_cost,
        "avgCost": m.avg_cost,
        "scores": [{"name": f.name, "average": f.average, "count": f.count} for f in m.scores],
    }


def prompt_metrics(engine: Engine, project_id: str, name: str) -> list[dict[str, Any]]:
    """Per version of ``name`` (newest first): linked observations, latency, usage, cost and
    score averages. 404 when the name has no version and no linked observation."""
    with engine.connect() as conn:
        versions = store.prompt_metrics(conn, project_id, name)
    if not versions:
        raise NotFound(f"Prompt not found: {name!r} (no version and no linked observation)")
    return [version_json(name, m) for m in versions]
