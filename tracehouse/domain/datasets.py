"""Datasets as data: request parsing and validation, JSON-Schema checks. Pure, no I/O.

A dataset is a named collection of items (input, expected output, metadata); names may contain
slashes (folders). A dataset may carry JSON Schemas for its items' ``input`` and
``expectedOutput``; every item written to it is checked against them. Items are upserted on
their id, which is unique within a project. Legacy dataset runs group run items, each linking
one item to the trace (and optionally observation) that ran it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from ..errors import InvalidInput

MAX_NAME_CHARS = 255
MAX_ID_CHARS = 255
STATUSES = ("ACTIVE", "ARCHIVED")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Fields of the create requests that, when absent or null, leave an existing value unchanged.
DATASET_FIELDS = ("description", "metadata", "inputSchema", "expectedOutputSchema")
ITEM_FIELDS = (
    "input",
    "expectedOutput",
    "metadata",
    "sourceTraceId",
    "sourceObservationId",
    "status",
)

SCHEMA_OF = {"input": "inputSchema", "expectedOutput": "expectedOutputSchema"}
"""The dataset schema field that governs each item field."""


def now_ms() -> datetime:
    """The current UTC time to the millisecond: the precision of every dataset timestamp, so a
    time read back from a reply (``updatedAt``) names exactly the version it came from."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


ONE_MS = timedelta(milliseconds=1)


# --- names and ids ---------------------------------------------------------------------------


def check_name(name: Any, field: str = "name") -> str:
    """A dataset (or run) name: non-empty; folders are slash-separated non-empty segments."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(field, "must be a non-empty string")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(field, f"must be at most {MAX_NAME_CHARS} characters")
    if _CONTROL.search(name):
        raise InvalidInput(field, "must not contain control characters")
    return name


def check_folder_name(name: Any, field: str = "name") -> str:
    """A dataset name as created: also no empty folder segment (leading, trailing or ``//``)."""
    check_name(name, field)
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidInput(field, "folder segments (between slashes) must not be empty")
    return str(name)


def _optional_string(body: dict[str, Any], key: str, limit: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(key, "must be a non-empty string or null")
    if limit is not None and len(value) > limit:
        raise InvalidInput(key, f"must be at most {limit} characters")
    return value


def _required_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(key, "is required (a non-empty string)")
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    return body


def _timestamp(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(key, "must be an ISO-8601 date-time string or null")
    try:
        ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(key, f"is not an ISO-8601 date-time: {value!r}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --- JSON Schema -----------------------------------------------------------------------------


def check_json_schema(schema: Any, field: str) -> Any:
    """A JSON Schema (an object or a boolean), checked against its draft's meta-schema.

    The draft is the one ``$schema`` names, else 2020-12 (what Langfuse's validator speaks).
    """
    if not isinstance(schema, dict | bool):
        raise InvalidInput(field, "must be a JSON Schema (a JSON object or a boolean)")
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise InvalidInput(
            field,
            f"is not a valid JSON Schema: {exc.message}" + (f" (at /{where})" if where else ""),
        ) from None
    return schema


def schema_problem(value: Any, schema: Any) -> str | None:
    """Why ``value`` does not match ``schema`` (the most relevant error), or None if it does."""
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    error = schema_errors.best_match(cls(schema).iter_errors(value))
    if error is None:
        return None
    where = "/" + "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at {where})"


def check_item_against(
    schemas: dict[str, Any], values: dict[str, Any], *, item_id: str | None = None
) -> None:
    """400 naming the item field when its value breaks the dataset's schema for it.

    ``schemas`` maps ``inputSchema``/``expectedOutputSchema`` to the schema (or None); ``values``
    maps ``input``/``expectedOutput`` to the item's value. A null value (no input, no expected
    output) is not checked.
    """
    for field, schema_field in SCHEMA_OF.items():
        schema = schemas.get(schema_field)
        value = values.get(field)
        if schema is None or value is None:
            continue
        problem = schema_problem(value, schema)
        if problem is not None:
            which = f" of item {item_id!r}" if item_id is not None else ""
            raise InvalidInput(
                field, f"{field}{which} does not match the dataset's {schema_field}: {problem}"
            )


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRequest:
    """``POST /api/public/v2/datasets``; ``given`` holds the optional fields sent non-null."""

    name: str
    values: dict[str, Any]  # wire field -> value, only the ones given (non-null)


def parse_dataset_request(body: Any) -> DatasetRequest:
    body = _object(body)
    name = check_folder_name(body.get("name"), "name")
    values: dict[str, Any] = {}
    description = body.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise InvalidInput("description", "must be a string or null")
        values["description"] = description
    if body.get("metadata") is not None:
        values["metadata"] = body["metadata"]
    for key in ("inputSchema", "expectedOutputSchema"):
        if body.get(key) is not None:
            values[key] = check_json_schema(body[key], key)
    return DatasetRequest(name=name, values=values)


@dataclass(frozen=True)
class ItemRequest:
    """``POST /api/public/dataset-items``: the dataset, the id (if given) and the item fields
    sent non-null (absent or null fields keep their value on an update, as in Langfuse)."""

    dataset_name: str
    id: str | None
    values: dict[str, Any]


def parse_item_request(body: Any) -> ItemRequest:
    body = _object(body)
    dataset_name = check_name(body.get("datasetName"), "datasetName")
    item_id = _optional_string(body, "id", MAX_ID_CHARS)
    values: dict[str, Any] = {}
    for key in ("input", "expectedOutput", "metadata"):
        if body.get(key) is not None:
            values[key] = body[key]
    for key in ("sourceTraceId", "sourceObservationId"):
        value = _optional_string(body, key)
        if value is not None:
            values[key] = value
    status = body.get("status")
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput("status", f"must be one of {list(STATUSES)}, got {status!r}")
        values["status"] = status
    return ItemRequest(dataset_name=dataset_name, id=item_id, values=values)


@dataclass(frozen=True)
class RunItemRequest:
    """``POST /api/public/dataset-run-items``."""

    run_name: str
    run_description: str | None
    metadata: Any
    dataset_item_id: str
    trace_id: str | None
    observation_id: str | None
    dataset_version: datetime | None
    created_at: datetime | None


def parse_run_item_request(body: Any) -> RunItemRequest:
    body = _object(body)
    run_name = check_name(body.get("runName"), "runName")
    description = body.get("runDescription")
    if description is not None and not isinstance(description, str):
        raise InvalidInput("runDescription", "must be a string or null")
    trace_id = _optional_string(body, "traceId")
    observation_id = _optional_string(body, "observationId")
    if trace_id is None and observation_id is None:
        raise InvalidInput("traceId", "is required (or an observationId to take the trace from)")
    return RunItemRequest(
        run_name=run_name,
        run_description=description,
        metadata=body.get("metadata"),
        dataset_item_id=_required_string(body, "datasetItemId"),
        trace_id=trace_id,
        observation_id=observation_id,
        dataset_version=_timestamp(body, "datasetVersion"),
        created_at=_timestamp(body, "createdAt"),
    )
