"""Scores: create (one, or a list of them), list (v2 numbered pages, v3 keyset cursor), get
one, delete.

A score posted here becomes a ``score-create`` ingestion event, so it is validated and merged
exactly like one sent in a batch (re-posting an id updates that score).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..auth.keys import Principal
from ..domain.events import SCORE_DATA_TYPES, SCORE_SOURCES, Event
from ..domain.score_configs import apply_config
from ..errors import InvalidInput, NotFound, RateLimited
from ..ingest.batch import parse_event
from ..store import scores as score_store
from ..store.filters import parse_filter_param
from . import shapes
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import (
    decode_cursor,
    encode_cursor,
    page_and_limit,
    parse_field_groups,
    simple_condition,
    time_window,
)
from .score_configs import project_configs

router = APIRouter()

MAX_SCORE_LIMIT = 100
DEFAULT_SCORE_LIMIT = 50
V2_FIELD_GROUPS = {"score", "trace"}
V3_FIELD_GROUPS = ("details", "subject", "annotation")
V3_VALUE_DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL")

Multi = Annotated[list[str] | None, Query()]


# -- create ------------------------------------------------------------------------------------


def _request_field_error(exc: InvalidInput) -> InvalidInput:
    """Name fields as this request body does (``value``), not by the ingestion path (``body.value``)."""
    field = exc.field
    rule = exc.message.removeprefix(f"{field}: ") if field else exc.message
    if field and field.startswith("body."):
        field = field.removeprefix("body.")
    return InvalidInput(field, rule)


def score_event(body: Any) -> Event:
    """A CreateScoreRequest as a ``score-create`` event, validated by the ingestion parser.

    A score naming a ``configId`` still has to pass :func:`_check_configs`.
    """
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object (CreateScoreRequest)")
    if body.get("source") == "EVAL":
        # CreateScoreSource: EVAL is reserved for Langfuse's own evaluators on this endpoint.
        raise InvalidInput("source", "EVAL is not accepted here; use API or ANNOTATION")
    body = dict(body)
    if body.get("id") in (None, ""):
        body["id"] = str(uuid.uuid4())
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "score-create",
        "timestamp": datetime.now(UTC).isoformat(),
        "body": body,
    }
    try:
        event = parse_event(envelope)
    except InvalidInput as exc:
        raise _request_field_error(exc) from None
    assert event is not None  # only sdk-log parses to None
    return event


async def _check_configs(
    services: ServicesDep, project_id: str, scores: list[tuple[Event, Any]]
) -> list[InvalidInput | None]:
    """Check the scores that name a configId against it: one result per score (None: valid)."""
    wanted = {e.fields["config_id"] for e, _ in scores if e.fields.get("config_id")}
    if not wanted:
        return [None] * len(scores)
    configs = await project_configs(services, project_id, wanted)
    results: list[InvalidInput | None] = []
    for event, sent_data_type in scores:
        config_id = event.fields.get("config_id")
        try:
            if config_id:
                apply_config(event.fields, sent_data_type, configs.get(config_id), config_id)
        except InvalidInput as exc:
            results.append(exc)
            continue
        results.append(None)
    return results


@router.post("/api/public/scores")
async def create_score(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, services.settings.max_body_bytes))
    if isinstance(body, list):
        return await _create_scores(body, services, principal.project_id)
    event = score_event(body)
    (problem,) = await _check_configs(
        services, principal.project_id, [(event, body.get("dataType"))]
    )
    if problem is not None:
        raise problem
    await services.writer.write(principal.project_id, [event])
    return json_response({"id": event.entity_id})


async def _create_scores(items: list[Any], services: ServicesDep, project_id: str) -> Response:
    """A list of CreateScoreRequests (the Python SDK >= 5 sends its scores this way).

    Each score is validated on its own and the valid ones are kept: 202 ``{"message":
    "Accepted"}`` when all are, else 207 with the counts and one message per rejected score.
    """
    if not items:
        raise InvalidInput("body", "expected at least one score")
    parsed: list[tuple[int, Event, Any]] = []
    problems: dict[int, str] = {}
    for index, item in enumerate(items):
        try:
            parsed.append((index, score_event(item), item.get("dataType")))
        except InvalidInput as exc:
            problems[index] = exc.message
    checks = await _check_configs(services, project_id, [(e, t) for _, e, t in parsed])
    events: list[Event] = []
    for (index, event, _), problem in zip(parsed, checks, strict=True):
        if problem is None:
            events.append(event)
        else:
            problems[index] = problem.message
    if events:
        await services.writer.write(project_id, events)
    if not problems:
        return json_response({"message": "Accepted"}, status_code=202)
    errors = [{"message": f"[{index}] {problems[index]}"} for index in sorted(problems)]
    return json_response(
        {"accepted": len(events), "rejected": len(errors), "errors": errors}, status_code=207
    )


# -- browser feedback: the public key alone (Bearer) may send scores, rate-limited -------------


def limit_public_key(request: Request, services: ServicesDep, principal: Principal) -> None:
    """429 + Retry-After when a public key alone (Bearer, scores only) sends too often."""
    if principal.scope == "project":
        return
    wait = services.public_key_limiter.take(principal.public_key)
    if wait > 0:
        raise RateLimited(
            "Too many requests with this public key; retry later",
            retry_after=max(1, math.ceil(wait)),
        )


# -- query-parameter helpers -----------------------------------------------------------------


def _csv(
    name: str, raw: str | None, allowed: tuple[str, ...] | None = None, *, fold_case: bool = False
) -> list[str]:
    """A comma-separated parameter as a list (blank items dropped), checked against ``allowed``."""
    items = [item.strip() for item in (raw or "").split(",") if item.strip()]
    if fold_case:
        items = [item.upper() for item in items]
    if allowed is not None:
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise InvalidInput(name, f"unknown value(s) {unknown}; use {', '.join(allowed)}")
    return items


def _multi(values: list[str] | None) -> list[str]:
    """A repeatable parameter; a single occurrence may also list values separated by commas."""
    if not values:
        return []
    if len(values) == 1:
        return [item.strip() for item in values[0].split(",") if item.strip()]
    return [v for v in values if v]


def _one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidInput(name, f"unknown value {value!r}; use one of {', '.join(allowed)}")
    return value


def _finite(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise InvalidInput(name, "must be a finite number")
    return value


def _time_conditions(from_ts: str | None, to_ts: str | None) -> list[dict[str, Any]]:
    """fromTimestamp is inclusive, toTimestamp exclusive."""
    return time_window("timestamp", start=("fromTimestamp", from_ts), end=("toTimestamp", to_ts))


def _limit(limit: int | None) -> int:
    limit = DEFAULT_SCORE_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_SCORE_LIMIT:
        raise InvalidInput("limit", f"must be between 1 and {MAX_SCORE_LIMIT}")
    return limit


# -- v2: numbered pages ------------------------------------------------------------------------


def _value_compare(operator: str | None, value: float | None) -> tuple[str, float] | None:
    if operator is None and value is None:
        return None
    allowed = ", ".join(score_store.VALUE_OPERATORS)
    if operator is None:
        raise InvalidInput("operator", f"is required with value; use one of {allowed}")
    if operator not in score_store.VALUE_OPERATORS:
        raise InvalidInput("operator", f"unknown operator {operator!r}; use one of {allowed}")
    if value is None:
        raise InvalidInput("value", "is required with operator")
    _finite("value", value)
    return operator, value


def _trace_of(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["trace_found"] is None:
        return None
    return {
        "userId": row["trace_user_id"],
        "tags": row["trace_tags"] or [],
        "environment": row["trace_environment"],
        "sessionId": row["trace_session_id"],
    }


@router.get("/api/public/v2/scores")
def list_scores(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
    userId: str | None = None,
    name: str | None = None,
    fromTimestamp: str | None = None,
    toTimestamp: str | None = None,
    environment: Multi = None,
    source: str | None = None,
    operator: str | None = None,
    value: float | None = None,
    scoreIds: str | None = None,
    configId: str | None = None,
    sessionId: str | None = None,
    datasetRunId: str | None = None,
    traceId: str | None = None,
    observationId: str | None = None,
    queueId: str | None = None,
    dataType: str | None = None,
    traceTags: Multi = None,
    fields: str | None = None,
    filter: str | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    limit = _limit(limit)
    groups = parse_field_groups(fields, V2_FIELD_GROUPS, always="score")
    tags = _multi(traceTags)
    by_trace = bool(userId or tags)
    if by_trace and "trace" not in groups:
        raise InvalidInput("fields", "must include 'trace' when filtering by userId or traceTags")

    conds = []
    for column, text in (
        ("name", name),
        ("source", _one_of("source", source, SCORE_SOURCES)),
        ("dataType", _one_of("dataType", dataType, SCORE_DATA_TYPES)),
        ("configId", configId),
        ("queueId", queueId),
        ("sessionId", sessionId),
        ("datasetRunId", datasetRunId),
        ("traceId", traceId),
        ("userId", userId),
    ):
        if text:
            conds.append(simple_condition(column, "string", "=", text))
    for column, options in (
        ("id", _csv("scoreIds", scoreIds)),
        ("observationId", _csv("observationId", observationId)),
    ):
        if options:
            conds.append(simple_condition(column, "stringOptions", "any of", options))
    environments = _multi(environment)
    if environments:
        conds.append(simple_condition("environment", "stringOptions", "any of", environments))
        if by_trace:  # as Langfuse: filtering by trace properties also pins the trace's environment
            conds.append(
                simple_condition("traceEnvironment", "stringOptions", "any of", environments)
            )
    if tags:
        conds.append(simple_condition("traceTags", "arrayOptions", "all of", tags))
    conds += _time_conditions(fromTimestamp, toTimestamp)
    conds += parse_filter_param(filter)
    compare = _value_compare(operator, value)

    with services.engine.connect() as conn:
        rows, total = score_store.list_scores(
            conn, principal.project_id, conds, page=page, limit=limit, value_compare=compare
        )
    data = []
    for row in rows:
        item = shapes.score(row)
        item["trace"] = _trace_of(row) if "trace" in groups else None
        data.append(item)
    return json_response({"data": data, "meta": shapes.page_meta(page, limit, total)})


@router.get("/api/public/v2/scores/{score_id}")
def get_score(score_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    with services.engine.connect() as conn:
        row = score_store.get_score(conn, principal.project_id, score_id)
    if row is None:
        raise NotFound("Score not found")
    return json_response(shapes.score(row))


@router.delete("/api/public/scores/{score_id}")
async def delete_score(
    score_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    pid = principal.project_id
    deleted = await services.writer.run(lambda conn: score_store.delete_score(conn, pid, score_id))
    if not deleted:
        raise NotFound("Score not found")
    return Response(status_code=204)


# -- v3: keyset cursor, polymorphic value ------------------------------------------------------


def _v3_groups(raw: str | None) -> set[str]:
    """Optional field groups; the core fields are always returned."""
    return set(_csv("fields", raw, V3_FIELD_GROUPS))


def _v3_value(row: dict[str, Any]) -> Any:
    data_type = row["data_type"]
    if data_type == "NUMERIC":
        return row["value"]
    if data_type == "BOOLEAN":
        return row["value"] == 1
    return row["string_value"] or ""


def _subject(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["dataset_run_id"]:
        return {"kind": "experiment", "id": row["dataset_run_id"]}
    if row["observation_id"]:
        return {"kind": "observation", "id": row["observation_id"], "traceId": row["trace_id"]}
    if row["session_id"]:
        return {"kind": "session", "id": row["session_id"]}
    if row["trace_id"]:
        return {"kind": "trace", "id": row["trace_id"]}
    return None


def v3_item(row: dict[str, Any], groups: set[str]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "projectId": row["project_id"],
        "name": row["name"],
        "dataType": row["data_type"],
        "value": _v3_value(row),
        "source": row["source"],
        "timestamp": shapes.iso(row["timestamp"]),
        "environment": row["environment"],
        "createdAt": shapes.iso(row["created_at"]),
        "updatedAt": shapes.iso(row["updated_at"]),
    }
    if "details" in groups:
        metadata = row["metadata"]
        out["comment"] = row["comment"]
        out["configId"] = row["config_id"]
        # ScoreV3.metadata is an object: a scalar sent as metadata is keyed like Langfuse does.
        out["metadata"] = (
            metadata if isinstance(metadata, dict) or metadata is None else {"metadata": metadata}
        )
    if "subject" in groups:
        out["subject"] = _subject(row)
    if "annotation" in groups:
        out["authorUserId"] = row["author_user_id"]
        out["queueId"] = row["queue_id"]
    return out


def _v3_subject_conditions(
    trace_ids: list[str], session_ids: list[str], observation_ids: list[str], run_ids: list[str]
) -> list[dict[str, Any]]:
    if observation_ids and not trace_ids:
        raise InvalidInput(
            "observationId", "requires traceId (observation ids are scoped to a trace)"
        )
    given = [
        n
        for n, v in (("traceId", trace_ids), ("sessionId", session_ids), ("experimentId", run_ids))
        if v
    ]
    if len(given) > 1:
        raise InvalidInput(given[1], f"cannot be combined with {given[0]}")
    conds = []
    for column, options in (
        ("traceId", trace_ids),
        ("sessionId", session_ids),
        ("observationId", observation_ids),
        ("datasetRunId", run_ids),
    ):
        if options:
            conds.append(simple_condition(column, "stringOptions", "any of", options))
    return conds


def _v3_value_conditions(
    data_types: list[str], values: list[str], value_min: float | None, value_max: float | None
) -> tuple[list[dict[str, Any]], list[float] | None]:
    """Conditions for value/valueMin/valueMax, plus numeric values to match exactly (or None)."""
    conds: list[dict[str, Any]] = []
    value_in: list[float] | None = None
    if values:
        if len(data_types) != 1 or data_types[0] not in V3_VALUE_DATA_TYPES:
            raise InvalidInput(
                "value", "needs exactly one dataType, one of " + ", ".join(V3_VALUE_DATA_TYPES)
            )
        if data_types[0] == "CATEGORICAL":
            conds.append(simple_condition("stringValue", "stringOptions", "any of", values))
        elif data_types[0] == "BOOLEAN":
            if any(v not in ("true", "false") for v in values):
                raise InvalidInput("value", 'BOOLEAN values must be "true" or "false"')
            value_in = [1.0 if v == "true" else 0.0 for v in values]
        else:
            try:
                value_in = [float(v) for v in values]
            except ValueError:
                raise InvalidInput("value", "NUMERIC values must be numbers") from None
            if not all(math.isfinite(v) for v in value_in):
                raise InvalidInput("value", "NUMERIC values must be finite numbers")
    for name, bound, oper in (("valueMin", value_min, ">="), ("valueMax", value_max, "<=")):
        if _finite(name, bound) is None:
            continue
        if data_types != ["NUMERIC"]:
            raise InvalidInput(name, "requires dataType=NUMERIC")
        conds.append(simple_condition("value", "number", oper, bound))
    return conds, value_in


@router.get("/api/public/v3/scores")
def list_scores_v3(
    services: ServicesDep,
    principal: ProjectPrincipal,
    limit: int | None = None,
    cursor: str | None = None,
    fields: str | None = None,
    ids: Annotated[str | None, Query(alias="id")] = None,
    name: str | None = None,
    source: str | None = None,
    dataType: str | None = None,
    environment: str | None = None,
    configId: str | None = None,
    queueId: str | None = None,
    authorUserId: str | None = None,
    value: str | None = None,
    valueMin: float | None = None,
    valueMax: float | None = None,
    traceId: str | None = None,
    sessionId: str | None = None,
    observationId: str | None = None,
    experimentId: str | None = None,
    fromTimestamp: str | None = None,
    toTimestamp: str | None = None,
) -> Response:
    limit = _limit(limit)
    groups = _v3_groups(fields)
    after = decode_cursor(cursor)
    data_types = _csv("dataType", dataType, SCORE_DATA_TYPES, fold_case=True)
    conds = []
    for column, options in (
        ("id", _csv("id", ids)),
        ("name", _csv("name", name)),
        ("source", _csv("source", source, SCORE_SOURCES, fold_case=True)),
        ("dataType", data_types),
        ("environment", _csv("environment", environment)),
        ("configId", _csv("configId", configId)),
        ("queueId", _csv("queueId", queueId)),
        ("authorUserId", _csv("authorUserId", authorUserId)),
    ):
        if options:
            conds.append(simple_condition(column, "stringOptions", "any of", options))
    conds += _v3_subject_conditions(
        _csv("traceId", traceId),
        _csv("sessionId", sessionId),
        _csv("observationId", observationId),
        _csv("experimentId", experimentId),
    )
    value_conds, value_in = _v3_value_conditions(
        data_types, _csv("value", value), valueMin, valueMax
    )
    conds += value_conds
    conds += _time_conditions(fromTimestamp, toTimestamp)

    with services.engine.connect() as conn:
        rows = score_store.list_scores_after(
            conn, principal.project_id, conds, after=after, limit=limit + 1, value_in=value_in
        )
    meta: dict[str, Any] = {"limit": limit}
    if len(rows) > limit:  # one extra row was read to know whether another page exists
        rows = rows[:limit]
        meta["cursor"] = encode_cursor(rows[-1]["timestamp"], rows[-1]["id"])
    return json_response({"data": [v3_item(r, groups) for r in rows], "meta": meta})
