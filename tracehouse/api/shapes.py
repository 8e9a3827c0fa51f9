"""Stored rows → Langfuse wire shapes (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso(ts: datetime | None) -> str | None:
    """UTC ISO-8601 with milliseconds and Z, as Langfuse writes timestamps."""
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def trace(row: dict[str, Any], *, html_base: str = "") -> dict[str, Any]:
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "timestamp": iso(row["timestamp"]),
        "name": row["name"],
        "input": row["input"],
        "output": row["output"],
        "sessionId": row["session_id"],
        "release": row["release"],
        "version": row["version"],
        "userId": row["user_id"],
        "metadata": row["metadata"],
        "tags": row["tags"] or [],
        "public": bool(row["public"]),
        "bookmarked": bool(row["bookmarked"]),
        "environment": row["environment"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "htmlPath": f"{html_base}/project/{row['project_id']}/traces/{row['id']}",
    }


def observation(row: dict[str, Any]) -> dict[str, Any]:
    """An ObservationsView: the Observation fields plus prompt, model, price and latency."""
    usage = row["usage_details"] or {}
    cost = row["cost_details"] or {}
    start, end = row["start_time"], row["end_time"]
    completion_start = row["completion_start_time"]
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "traceId": row["trace_id"],
        "type": row["type"],
        "name": row["name"],
        "startTime": iso(start),
        "endTime": iso(end),
        "completionStartTime": iso(completion_start),
        "model": row["model"],
        "modelParameters": row["model_parameters"],
        "input": row["input"],
        "output": row["output"],
        "version": row["version"],
        "metadata": row["metadata"],
        "level": row["level"],
        "statusMessage": row["status_message"],
        "parentObservationId": row["parent_observation_id"],
        "environment": row["environment"],
        "usage": {
            "input": int(row["input_usage"] or 0),
            "output": int(row["output_usage"] or 0),
            "total": int(row["total_usage"] or 0),
            "unit": "TOKENS",
            "inputCost": row["input_cost"],
            "outputCost": row["output_cost"],
            "totalCost": row["total_cost"],
        },
        "usageDetails": usage,
        "costDetails": cost,
        "promptId": row["prompt_id"],
        "promptName": row["prompt_name"],
        "promptVersion": row["prompt_version"],
        "modelId": row["internal_model_id"],
        "inputPrice": row["input_price"],
        "outputPrice": row["output_price"],
        "totalPrice": row["total_price"],
        "calculatedInputCost": row["input_cost"],
        "calculatedOutputCost": row["output_cost"],
        "calculatedTotalCost": row["total_cost"],
        "latency": seconds_between(start, end),
        "timeToFirstToken": seconds_between(start, completion_start),
        # Flat totals, as Langfuse's observation views also return them.
        "inputUsage": int(row["input_usage"] or 0),
        "outputUsage": int(row["output_usage"] or 0),
        "totalUsage": int(row["total_usage"] or 0),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def score(row: dict[str, Any]) -> dict[str, Any]:
    """A score in the v2 shape (``value`` numeric, ``stringValue`` for non-numeric types)."""
    data_type = row["data_type"]
    out: dict[str, Any] = {
        "id": row["id"],
        "projectId": row["project_id"],
        "traceId": row["trace_id"],
        "sessionId": row["session_id"],
        "observationId": row["observation_id"],
        "datasetRunId": row["dataset_run_id"],
        "name": row["name"],
        "source": row["source"],
        "dataType": data_type,
        "timestamp": iso(row["timestamp"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "authorUserId": row["author_user_id"],
        "comment": row["comment"],
        "metadata": row["metadata"] if row["metadata"] is not None else {},
        "configId": row["config_id"],
        "queueId": row["queue_id"],
        "environment": row["environment"],
    }
    if data_type == "NUMERIC":
        out["value"] = row["value"]
    elif data_type == "TEXT":
        out["value"] = None
        out["stringValue"] = row["string_value"]
    else:  # CATEGORICAL, BOOLEAN, CORRECTION: numeric mapping (0 without a config) + string
        out["value"] = row["value"] if row["value"] is not None else 0
        out["stringValue"] = row["string_value"]
    return out


def session(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "createdAt": iso(row["created_at"]),
        "projectId": row["project_id"],
        "environment": row["environment"],
    }


def page_meta(page: int, limit: int, total: int) -> dict[str, int]:
    return {
        "page": page,
        "limit": limit,
        "totalItems": total,
        "totalPages": (total + limit - 1) // limit if limit else 0,
    }
