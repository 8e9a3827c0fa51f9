"""Dataset use cases: datasets, versioned items, legacy runs and run items.

Writes run as one transaction on the write path (``run(fn)``): the state a write checks (the
dataset exists, the item id is free, the schemas hold) is the state it commits on. Reads take a
plain connection. Results are the public API's JSON shapes.

Versioning: every item create, update or delete adds a row from ``valid_from`` (now, to the
millisecond) and closes the previous one, so ``list_items(..., version=T)`` gives the items as
they were at T. A write to an item in the same millisecond as its last one is placed one
millisecond later, so an item's versions never share a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..domain import datasets as rules
from ..domain.datasets import ONE_MS, now_ms
from ..errors import InvalidInput, NotFound
from ..store import datasets as store
from ..store import observations as observation_store

Run = Callable[[Callable[[Connection], Any]], Awaitable[Any]]
"""The write path's ``run``: ``fn(conn)`` in a write transaction."""

_DATASET_COLUMNS = {
    "description": "description",
    "metadata": "metadata",
    "inputSchema": "input_schema",
    "expectedOutputSchema": "expected_output_schema",
}
_ITEM_COLUMNS = {
    "input": "input",
    "expectedOutput": "expected_output",
    "metadata": "metadata",
    "sourceTraceId": "source_trace_id",
    "sourceObservationId": "source_observation_id",
    "status": "status",
}


# --- shapes ----------------------------------------------------------------------------------


def iso(ts: datetime | None) -> str | None:
    """UTC ISO-8601 with milliseconds and Z (as ``api.shapes.iso``)."""
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def page_meta(page: int, limit: int, total: int) -> dict[str, int]:
    return {
        "page": page,
        "limit": limit,
        "totalItems": total,
        "totalPages": (total + limit - 1) // limit,
    }


def dataset_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public ``Dataset``."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "metadata": row["metadata"],
        "inputSchema": row["input_schema"],
        "expectedOutputSchema": row["expected_output_schema"],
        "projectId": row["project_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def item_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public ``DatasetItem`` of one version row (``updatedAt``: when that version began)."""
    return {
        "id": row["id"],
        "status": row["status"],
        "input": row["input"],
        "expectedOutput": row["expected_output"],
        "metadata": row["metadata"],
        "sourceTraceId": row["source_trace_id"],
        "sourceObservationId": row["source_observation_id"],
        "datasetId": row["dataset_id"],
        "datasetName": row["dataset_name"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["valid_from"]),
        "mediaReferences": [],
    }


def run_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public ``DatasetRun``."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "metadata": row["metadata"],
        "datasetId": row["dataset_id"],
        "datasetName": row["dataset_name"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def run_item_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public ``DatasetRunItem``."""
    return {
        "id": row["id"],
        "datasetRunId": row["run_id"],
        "datasetRunName": row["run_name"],
        "datasetItemId": row["dataset_item_id"],
        "traceId": row["trace_id"],
        "observationId": row["observation_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


# --- helpers ---------------------------------------------------------------------------------


async def _write(run: Run, fn: Callable[[Connection], Any]) -> Any:
    """``run(fn)``, once more if it lost a race on a unique key (another process created the
    same dataset or run first): the second attempt sees that row and updates it instead."""
    try:
        return await run(fn)
    except IntegrityError:
        return await run(fn)


def _dataset_or_404(conn: Connection, project_id: str, name: str) -> dict[str, Any]:
    dataset = store.get_dataset_by_name(conn, project_id, name)
    if dataset is None:
        raise NotFound(f"Dataset {name!r} not found")
    return dataset


def _schemas(dataset: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputSchema": dataset["input_schema"],
        "expectedOutputSchema": dataset["expected_output_schema"],
    }


def _offset(page: int, limit: int) -> int:
    return (page - 1) * limit


# --- datasets --------------------------------------------------------------------------------


async def upsert_dataset(run: Run, project_id: str, body: Any) -> dict[str, Any]:
    """Create the dataset, or update the fields given (non-null) of the one of that name.

    A schema given is checked as a JSON Schema, then against every current item of the
    dataset (400 naming the schema field and the first item that breaks it).
    """
    request = rules.parse_dataset_request(body)

    def write(conn: Connection) -> dict[str, Any]:
        now = now_ms()
        values = {_DATASET_COLUMNS[k]: v for k, v in request.values.items()}
        existing = store.get_dataset_by_name(conn, project_id, request.name)
        if existing is None:
            dataset_id = str(uuid.uuid4())
            row = {
                "project_id": project_id,
                "id": dataset_id,
                "name": request.name,
                "description": None,
                "metadata": None,
                "input_schema": None,
                "expected_output_schema": None,
                "created_at": now,
                "updated_at": now,
                **values,
            }
            store.insert_dataset(conn, row)
            return row
        changed = {k: v for k, v in request.values.items() if k in rules.SCHEMA_OF.values()}
        if changed:
            items = store.items_as_of(conn, project_id, existing["id"])
            for item in items:
                _check_schema_change(changed, item)
        store.update_dataset(
            conn,
            project_id,
            existing["id"],
            {**values, "updated_at": max(now, existing["updated_at"])},
        )
        return {**existing, **values, "updated_at": max(now, existing["updated_at"])}

    return dataset_json(await _write(run, write))


def _check_schema_change(schemas: dict[str, Any], item: dict[str, Any]) -> None:
    values = {"input": item["input"], "expectedOutput": item["expected_output"]}
    for field, schema_field in rules.SCHEMA_OF.items():
        if schema_field not in schemas or values[field] is None:
            continue
        problem = rules.schema_problem(values[field], schemas[schema_field])
        if problem is not None:
            raise InvalidInput(
                schema_field,
                f"existing item {item['id']!r} does not match it ({field}: {problem}); "
                "update or delete that item first",
            )


def list_datasets(engine: Engine, project_id: str, page: int, limit: int) -> dict[str, Any]:
    with engine.connect() as conn:
        rows, total = store.list_datasets(
            conn, project_id, offset=_offset(page, limit), limit=limit
        )
    return {"data": [dataset_json(r) for r in rows], "meta": page_meta(page, limit, total)}


def get_dataset(engine: Engine, project_id: str, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dataset_json(_dataset_or_404(conn, project_id, name))


async def delete_dataset(run: Run, project_id: str, name: str) -> None:
    """The dataset, every version of its items, its runs and their run items."""

    def write(conn: Connection) -> None:
        dataset = _dataset_or_404(conn, project_id, name)
        store.delete_dataset(conn, project_id, dataset["id"])

    await run(write)


# --- items -----------------------------------------------------------------------------------


async def upsert_item(run: Run, project_id: str, body: Any) -> dict[str, Any]:
    """Create an item, or (an ``id`` of a current item) add a new version of it with the fields
    given (non-null) changed. The item is checked against the dataset's schemas."""
    request = rules.parse_item_request(body)

    def write(conn: Connection) -> dict[str, Any]:
        now = now_ms()
        dataset = _dataset_or_404(conn, project_id, request.dataset_name)
        item_id = request.id or str(uuid.uuid4())
        latest = store.open_item_row(conn, project_id, item_id, lock=True)
        valid_from = now if latest is None else max(now, latest["valid_from"] + ONE_MS)
        if latest is not None and not latest["is_deleted"]:
            if latest["dataset_id"] != dataset["id"]:
                other = store.get_dataset_by_id(conn, project_id, latest["dataset_id"])
                where = repr(other["name"]) if other else "another dataset"
                raise InvalidInput(
                    "id",
                    f"dataset item {item_id!r} already belongs to dataset {where}; item ids are "
                    "unique within a project and cannot be reused across datasets",
                )
            base = {column: latest[column] for column in _ITEM_COLUMNS.values()}
            created_at = latest["created_at"]
        else:
            base = {column: None for column in _ITEM_COLUMNS.values()}
            base["status"] = "ACTIVE"
            created_at = valid_from
        row = {**base, **{_ITEM_COLUMNS[k]: v for k, v in request.values.items()}}
        rules.check_item_against(
            _schemas(dataset),
            {"input": row["input"], "expectedOutput": row["expected_output"]},
        )
        store.add_item_version(
            conn,
            project_id,
            item_id,
            valid_from,
            {**row, "dataset_id": dataset["id"], "is_deleted": False, "created_at": created_at},
        )
        return {
            **row,
            "id": item_id,
            "dataset_id": dataset["id"],
            "dataset_name": dataset["name"],
            "created_at": created_at,
            "valid_from": valid_from,
        }

    return item_json(await _write(run, write))


def get_item(engine: Engine, project_id: str, item_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = store.get_item(conn, project_id, item_id)
    if row is None:
        raise NotFound(f"Dataset item {item_id!r} not found")
    return item_json(row)


def list_items(
    engine: Engine,
    project_id: str,
    *,
    dataset_name: str | None,
    source_trace_id: str | None,
    source_observation_id: str | None,
    version: datetime | None,
    page: int,
    limit: int,
) -> dict[str, Any]:
    if version is not None and dataset_name is None:
        raise InvalidInput("version", "needs datasetName (a version is of one dataset)")
    with engine.connect() as conn:
        dataset_id = None
        if dataset_name is not None:
            dataset_id = _dataset_or_404(conn, project_id, dataset_name)["id"]
        rows, total = store.list_items(
            conn,
            project_id,
            dataset_id=dataset_id,
            as_of=version,
            source_trace_id=source_trace_id,
            source_observation_id=source_observation_id,
            offset=_offset(page, limit),
            limit=limit,
        )
    return {"data": [item_json(r) for r in rows], "meta": page_meta(page, limit, total)}


async def delete_item(run: Run, project_id: str, item_id: str) -> dict[str, Any]:
    """Add a deletion version (reads as of earlier times still see the item) and delete the
    item's run items."""

    def write(conn: Connection) -> None:
        latest = store.open_item_row(conn, project_id, item_id, lock=True)
        if latest is None or latest["is_deleted"]:
            raise NotFound(f"Dataset item {item_id!r} not found")
        valid_from = max(now_ms(), latest["valid_from"] + ONE_MS)
        keep = {
            k: v
            for k, v in latest.items()
            if k not in ("project_id", "id", "valid_from", "valid_to", "updated_at")
        }
        store.add_item_version(conn, project_id, item_id, valid_from, {**keep, "is_deleted": True})
        store.delete_run_items_of_item(conn, project_id, item_id)

    await run(write)
    return {"message": "Dataset item successfully deleted"}


# --- runs and run items ----------------------------------------------------------------------


async def create_run_item(run: Run, project_id: str, body: Any) -> dict[str, Any]:
    """Link a dataset item to the trace (and observation) that ran it, in the run of that name
    of the item's dataset (created on first use; description and metadata given update it)."""
    request = rules.parse_run_item_request(body)

    def write(conn: Connection) -> dict[str, Any]:
        now = now_ms()
        item = store.get_item(conn, project_id, request.dataset_item_id)
        if item is None:
            raise NotFound(f"Dataset item {request.dataset_item_id!r} not found")
        trace_id = request.trace_id
        if trace_id is None:
            assert request.observation_id is not None
            observation = observation_store.get_observation(
                conn, project_id, request.observation_id
            )
            if observation is None:
                raise NotFound(
                    f"Observation {request.observation_id!r} not found; send traceId, or "
                    "send the observation before linking it"
                )
            trace_id = observation["trace_id"]
        dataset_run = store.get_run(conn, project_id, item["dataset_id"], request.run_name)
        if dataset_run is None:
            run_id = str(uuid.uuid4())
            store.insert_run(
                conn,
                {
                    "project_id": project_id,
                    "id": run_id,
                    "dataset_id": item["dataset_id"],
                    "name": request.run_name,
                    "description": request.run_description,
                    "metadata": request.metadata,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        else:
            run_id = dataset_run["id"]
            changes: dict[str, Any] = {}
            if request.run_description is not None:
                changes["description"] = request.run_description
            if request.metadata is not None:
                changes["metadata"] = request.metadata
            if changes:
                store.update_run(conn, project_id, run_id, {**changes, "updated_at": now})
        run_item_id = str(uuid.uuid4())
        store.insert_run_item(
            conn,
            {
                "project_id": project_id,
                "id": run_item_id,
                "run_id": run_id,
                "dataset_item_id": request.dataset_item_id,
                "trace_id": trace_id,
                "observation_id": request.observation_id,
                "dataset_version": request.dataset_version,
                "created_at": request.created_at or now,
                "updated_at": now,
            },
        )
        row = store.get_run_item(conn, project_id, run_item_id)
        assert row is not None
        return row

    return run_item_json(await _write(run, write))


def _run_or_404(
    conn: Connection, project_id: str, dataset: dict[str, Any], run_name: str
) -> dict[str, Any]:
    found = store.get_run(conn, project_id, dataset["id"], run_name)
    if found is None:
        raise NotFound(f"Dataset run {run_name!r} not found in dataset {dataset['name']!r}")
    return found


def list_run_items(
    engine: Engine, project_id: str, dataset_id: str, run_name: str, page: int, limit: int
) -> dict[str, Any]:
    with engine.connect() as conn:
        dataset = store.get_dataset_by_id(conn, project_id, dataset_id)
        if dataset is None:
            raise NotFound(f"Dataset with id {dataset_id!r} not found")
        found = _run_or_404(conn, project_id, dataset, run_name)
        rows, total = store.list_run_items(
            conn, project_id, found["id"], offset=_offset(page, limit), limit=limit
        )
    return {"data": [run_item_json(r) for r in rows], "meta": page_meta(page, limit, total)}


def list_runs(
    engine: Engine, project_id: str, dataset_name: str, page: int, limit: int
) -> dict[str, Any]:
    with engine.connect() as conn:
        dataset = _dataset_or_404(conn, project_id, dataset_name)
        rows, total = store.list_runs(
            conn, project_id, dataset["id"], offset=_offset(page, limit), limit=limit
        )
    return {"data": [run_json(r) for r in rows], "meta": page_meta(page, limit, total)}


def get_run(engine: Engine, project_id: str, dataset_name: str, run_name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        dataset = _dataset_or_404(conn, project_id, dataset_name)
        found = _run_or_404(conn, project_id, dataset, run_name)
        items, _ = store.list_run_items(conn, project_id, found["id"])
    return {**run_json(found), "datasetRunItems": [run_item_json(r) for r in items]}


async def delete_run(run: Run, project_id: str, dataset_name: str, run_name: str) -> dict[str, Any]:
    """The run and its run items. Scores that name the run (``datasetRunId``) stay, as in
    Langfuse, whose route deletes the run and queues only its run items for deletion."""

    def write(conn: Connection) -> None:
        dataset = _dataset_or_404(conn, project_id, dataset_name)
        store.delete_run(conn, project_id, _run_or_404(conn, project_id, dataset, run_name)["id"])

    await run(write)
    return {"message": "Dataset run successfully deleted"}
