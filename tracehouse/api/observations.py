"""Observations: the v1 list (numbered pages), one observation, the v2 list (cursor, field groups)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ..errors import InvalidInput, NotFound
from ..store import observations as observation_store
from ..store.types import dump_json
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response
from .params import (
    combine_conditions,
    decode_cursor,
    encode_cursor,
    page_and_limit,
    parse_field_groups,
    simple_condition,
    time_window,
)

router = APIRouter()

LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
METADATA_PREVIEW_CHARS = 200

# v2 field groups → the columns each needs (beyond the core ones), in the store's names.
V2_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "core": ("trace_id", "end_time", "project_id", "parent_observation_id", "type"),
    "basic": (
        "name",
        "level",
        "status_message",
        "version",
        "environment",
        "parent_observation_id",
        "trace_bookmarked",
        "trace_public",
        "trace_user_id",
        "trace_session_id",
    ),
    "time": ("completion_start_time", "created_at", "updated_at"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": (
        "model",
        "internal_model_id",
        "model_parameters",
        "input_price",
        "output_price",
        "total_price",
    ),
    "usage": ("usage_details", "cost_details", "total_cost", "pricing_tier_name"),
    "prompt": ("prompt_id", "prompt_name", "prompt_version"),
    "metrics": ("end_time", "completion_start_time"),
    "trace_context": ("trace_tags", "trace_release", "trace_name"),
}
V2_DEFAULT_GROUPS = {"core", "basic"}


def _query_conditions(
    params: dict[str, Any], from_ts: str | None, to_ts: str | None
) -> list[dict[str, Any]]:
    """The simple query parameters as filter conditions (``None`` values are absent)."""
    conds = [simple_condition(col, "string", "=", v) for col, v in params.items() if v is not None]
    return conds + time_window(
        "startTime", start=("fromStartTime", from_ts), end=("toStartTime", to_ts)
    )


def _level(level: str | None) -> str | None:
    if level is not None and level not in LEVELS:
        raise InvalidInput("level", f"must be one of {', '.join(LEVELS)}")
    return level


def _environment(
    conds: list[dict[str, Any]], environment: list[str] | None
) -> list[dict[str, Any]]:
    if environment:
        conds.append(simple_condition("environment", "stringOptions", "any of", environment))
    return conds


@router.get("/api/public/observations")
def list_observations(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
    name: str | None = None,
    userId: str | None = None,
    type: str | None = None,
    traceId: str | None = None,
    level: str | None = None,
    parentObservationId: str | None = None,
    environment: Annotated[list[str] | None, Query()] = None,
    fromStartTime: str | None = None,
    toStartTime: str | None = None,
    version: str | None = None,
    filter: str | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    simple = _query_conditions(
        {
            "name": name,
            "userId": userId,
            "type": type,
            "traceId": traceId,
            "level": _level(level),
            "parentObservationId": parentObservationId,
            "version": version,
        },
        fromStartTime,
        toStartTime,
    )
    conditions = combine_conditions(filter, _environment(simple, environment))
    with services.engine.connect() as conn:
        rows, total = observation_store.list_observations(
            conn, principal.project_id, conditions, page=page, limit=limit
        )
    data = [shapes.observation(r) for r in rows]
    return json_response({"data": data, "meta": shapes.page_meta(page, limit, total)})


@router.get("/api/public/observations/{observation_id}")
def get_observation(
    observation_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    with services.engine.connect() as conn:
        row = observation_store.get_observation(conn, principal.project_id, observation_id)
    if row is None:
        raise NotFound("Observation not found")
    return json_response(shapes.observation(row))


# --- v2 -------------------------------------------------------------------------------------


def _v2_groups(fields: str | None) -> set[str]:
    if fields is None or not fields.strip():
        return set(V2_DEFAULT_GROUPS)
    return parse_field_groups(fields, set(V2_GROUP_COLUMNS))


def _check_io_filters(conditions: list[dict[str, Any]]) -> None:
    """v2 only searches input/output with an `=` or `matches` condition among them."""
    io = [c for c in conditions if c["column"].lower() in ("input", "output")]
    if io and not any(c["operator"] in ("=", "matches") for c in io):
        raise InvalidInput(
            "filter",
            "an input/output filter needs at least one '=' or 'matches' condition on input or "
            "output; 'contains', 'starts with', 'ends with' and 'does not contain' alone are "
            "not supported",
        )


def _raw_text(value: Any) -> str | None:
    """I/O the way v2 returns it: a string as sent, any other JSON value as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return dump_json(value)


def _metadata_preview(metadata: Any, expand: set[str]) -> Any:
    """Top-level metadata values longer than the preview are cut, unless their key is expanded."""
    if not isinstance(metadata, dict):
        return metadata
    out = {}
    for key, value in metadata.items():
        text = _raw_text(value)
        if key in expand or text is None or len(text) <= METADATA_PREVIEW_CHARS:
            out[key] = value
        else:
            out[key] = text[:METADATA_PREVIEW_CHARS]
    return out


def _whole_numbers(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if details is None:
        return None
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in details.items()}


def _decimal_text(value: float | None) -> str | None:
    return None if value is None else format(Decimal(repr(value)), "f")


def _shape_v2(row: dict[str, Any], groups: set[str], expand: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"],
        "traceId": row["trace_id"],
        "startTime": shapes.iso(row["start_time"]),
        "endTime": shapes.iso(row["end_time"]),
        "projectId": row["project_id"],
        "parentObservationId": row["parent_observation_id"],
        "type": row["type"],
        # Required by the schema whatever the groups; filled by the `model` group.
        "modelId": None,
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
    }
    if "basic" in groups:
        out |= {
            "name": row["name"],
            "level": row["level"],
            "statusMessage": row["status_message"],
            "version": row["version"],
            "environment": row["environment"],
            "bookmarked": bool(row["trace_bookmarked"]),
            "public": bool(row["trace_public"]),
            "userId": row["trace_user_id"],
            "sessionId": row["trace_session_id"],
            "isRootObservation": row["parent_observation_id"] is None,
        }
    if "time" in groups:
        out |= {
            "completionStartTime": shapes.iso(row["completion_start_time"]),
            "createdAt": shapes.iso(row["created_at"]),
            "updatedAt": shapes.iso(row["updated_at"]),
        }
    if "io" in groups:
        out |= {"input": _raw_text(row["input"]), "output": _raw_text(row["output"])}
    if "metadata" in groups:
        out["metadata"] = _metadata_preview(row["metadata"], expand)
    if "model" in groups:
        out |= {
            "providedModelName": row["model"],
            # The spec names the provided model ``providedModelName``; the Python SDK >= 5
            # parses it as ``model``, so both carry it.
            "model": row["model"],
            "internalModelId": row["internal_model_id"],
            "modelParameters": row["model_parameters"],
            "modelId": row["internal_model_id"],
            # v2 carries unit prices as decimal strings ("0.0000025"), never exponents.
            "inputPrice": _decimal_text(row["input_price"]),
            "outputPrice": _decimal_text(row["output_price"]),
            "totalPrice": _decimal_text(row["total_price"]),
        }
    if "usage" in groups:
        out |= {
            "usageDetails": _whole_numbers(row["usage_details"]),
            "costDetails": row["cost_details"],
            "totalCost": row["total_cost"],
            "usagePricingTierName": row["pricing_tier_name"],
        }
    if "prompt" in groups:
        out |= {
            "promptId": row["prompt_id"],
            "promptName": row["prompt_name"],
            "promptVersion": row["prompt_version"],
        }
    if "metrics" in groups:
        start = row["start_time"]
        out |= {
            "latency": shapes.seconds_between(start, row["end_time"]),
            "timeToFirstToken": shapes.seconds_between(start, row["completion_start_time"]),
        }
    if "trace_context" in groups:
        out |= {
            "tags": row["trace_tags"] or [],
            "release": row["trace_release"],
            "traceName": row["trace_name"],
        }
    return out


@router.get("/api/public/v2/observations")
def list_observations_v2(
    services: ServicesDep,
    principal: ProjectPrincipal,
    fields: str | None = None,
    expandMetadata: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    parseIoAsJson: bool | None = None,
    name: str | None = None,
    userId: str | None = None,
    sessionId: str | None = None,
    type: str | None = None,
    traceId: str | None = None,
    level: str | None = None,
    parentObservationId: str | None = None,
    isRootObservation: bool | None = None,
    environment: Annotated[list[str] | None, Query()] = None,
    fromStartTime: str | None = None,
    toStartTime: str | None = None,
    version: str | None = None,
    filter: str | None = None,
) -> Response:
    if parseIoAsJson:
        raise InvalidInput(
            "parseIoAsJson", "is no longer supported: input and output are returned as raw strings"
        )
    _, limit = page_and_limit(None, limit)
    groups = _v2_groups(fields)
    expand = {k.strip() for k in (expandMetadata or "").split(",") if k.strip()}
    after = decode_cursor(cursor)
    simple = _query_conditions(
        {
            "name": name,
            "userId": userId,
            "sessionId": sessionId,
            "type": type,
            "traceId": traceId,
            "level": _level(level),
            "version": version,
        },
        fromStartTime,
        toStartTime,
    )
    if parentObservationId == "":  # empty: only observations without a parent
        simple.append(simple_condition("parentObservationId", "null", "is null", None))
    elif parentObservationId is not None:
        simple.append(simple_condition("parentObservationId", "string", "=", parentObservationId))
    if isRootObservation is not None:
        simple.append(simple_condition("isRootObservation", "boolean", "=", isRootObservation))
    conditions = combine_conditions(filter, _environment(simple, environment))
    _check_io_filters(conditions)
    columns = [c for g in sorted(groups) for c in V2_GROUP_COLUMNS[g]]
    with services.engine.connect() as conn:
        rows = observation_store.observations_after(
            conn, principal.project_id, conditions, after=after, limit=limit + 1, columns=columns
        )
    more = len(rows) > limit
    rows = rows[:limit]
    data = [_shape_v2(r, groups, expand) for r in rows]
    return json_response(
        {
            "data": data,
            "meta": {
                "cursor": encode_cursor(rows[-1]["start_time"], rows[-1]["id"]) if more else None
            },
        }
    )
