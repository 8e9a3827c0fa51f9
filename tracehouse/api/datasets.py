"""Datasets, dataset items (versioned), and the legacy dataset runs and run items.

Dataset names may contain slashes (folders); clients send them URL-encoded (``a%2Fb``), which
arrives here decoded, so name parameters are path-typed. ``DELETE /api/public/v2/datasets/{name}``
is a tracehouse addition (Langfuse has no public route for it).
"""

from __future__ import annotations

from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..domain.datasets import check_name
from ..errors import NotFound
from ..services import datasets as service
from .deps import ProjectPrincipal, ServicesDep, json_response, parse_json, read_body
from .params import page_and_limit, parse_timestamp

router = APIRouter()

DATASET_BODY_LIMIT = 5_000_000
ITEM_BODY_LIMIT = 20_000_000
RUN_ITEM_BODY_LIMIT = 1_000_000


# --- datasets --------------------------------------------------------------------------------


@router.post("/api/public/v2/datasets")
async def create_dataset(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, DATASET_BODY_LIMIT))
    return json_response(
        await service.upsert_dataset(services.writer.run, principal.project_id, body)
    )


@router.get("/api/public/v2/datasets")
def list_datasets(
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    return json_response(service.list_datasets(services.engine, principal.project_id, page, limit))


@router.get("/api/public/v2/datasets/{dataset_name:path}")
def get_dataset(dataset_name: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    check_name(dataset_name, "datasetName")
    return json_response(service.get_dataset(services.engine, principal.project_id, dataset_name))


@router.delete("/api/public/v2/datasets/{dataset_name:path}")
async def delete_dataset(
    dataset_name: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    check_name(dataset_name, "datasetName")
    await service.delete_dataset(services.writer.run, principal.project_id, dataset_name)
    return json_response({"message": "Dataset successfully deleted"})


# --- dataset items ---------------------------------------------------------------------------


@router.post("/api/public/dataset-items")
async def create_dataset_item(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, ITEM_BODY_LIMIT))
    return json_response(await service.upsert_item(services.writer.run, principal.project_id, body))


@router.get("/api/public/dataset-items")
def list_dataset_items(
    services: ServicesDep,
    principal: ProjectPrincipal,
    datasetName: str | None = None,  # noqa: N803 - wire names
    sourceTraceId: str | None = None,  # noqa: N803
    sourceObservationId: str | None = None,  # noqa: N803
    version: str | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    return json_response(
        service.list_items(
            services.engine,
            principal.project_id,
            dataset_name=datasetName or None,
            source_trace_id=sourceTraceId or None,
            source_observation_id=sourceObservationId or None,
            version=parse_timestamp("version", version),
            page=page,
            limit=limit,
        )
    )


@router.get("/api/public/dataset-items/{item_id:path}")
def get_dataset_item(item_id: str, services: ServicesDep, principal: ProjectPrincipal) -> Response:
    return json_response(service.get_item(services.engine, principal.project_id, item_id))


@router.delete("/api/public/dataset-items/{item_id:path}")
async def delete_dataset_item(
    item_id: str, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    return json_response(
        await service.delete_item(services.writer.run, principal.project_id, item_id)
    )


# --- legacy runs and run items ---------------------------------------------------------------


@router.post("/api/public/dataset-run-items")
async def create_dataset_run_item(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    body = parse_json(await read_body(request, RUN_ITEM_BODY_LIMIT))
    return json_response(
        await service.create_run_item(services.writer.run, principal.project_id, body)
    )


@router.get("/api/public/dataset-run-items")
def list_dataset_run_items(
    services: ServicesDep,
    principal: ProjectPrincipal,
    datasetId: str,  # noqa: N803 - wire names
    runName: str,  # noqa: N803
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    page, limit = page_and_limit(page, limit)
    return json_response(
        service.list_run_items(
            services.engine, principal.project_id, datasetId, runName, page, limit
        )
    )


_RUNS_PREFIX = "/api/public/datasets/"


def run_path(request: Request) -> tuple[str, str | None]:
    """(dataset name, run name or None for the run list) of ``/api/public/datasets/…/runs[/…]``.

    Read from the raw (still encoded) path, so URL-encoded names (``a%2Fb``) split exactly;
    with unencoded slashes the last ``runs`` segment separates the dataset from the run.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    start = path.find(_RUNS_PREFIX)
    segments = path[start + len(_RUNS_PREFIX) :].split("/") if start >= 0 else []
    at = next((i for i in range(len(segments) - 1, 0, -1) if segments[i] == "runs"), None)
    if at is None:
        raise NotFound("Not found")
    dataset_name = check_name(unquote("/".join(segments[:at])), "datasetName")
    if at == len(segments) - 1:
        return dataset_name, None
    return dataset_name, check_name(unquote("/".join(segments[at + 1 :])), "runName")


@router.get("/api/public/datasets/{path:path}")
def get_runs(
    path: str,
    request: Request,
    services: ServicesDep,
    principal: ProjectPrincipal,
    page: int | None = None,
    limit: int | None = None,
) -> Response:
    """``…/{datasetName}/runs`` (a page of runs) or ``…/{datasetName}/runs/{runName}``."""
    dataset_name, run_name = run_path(request)
    if run_name is None:
        page, limit = page_and_limit(page, limit)
        return json_response(
            service.list_runs(services.engine, principal.project_id, dataset_name, page, limit)
        )
    return json_response(
        service.get_run(services.engine, principal.project_id, dataset_name, run_name)
    )


@router.delete("/api/public/datasets/{path:path}")
async def delete_run(
    path: str, request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    dataset_name, run_name = run_path(request)
    if run_name is None:
        raise NotFound("Not found")
    return json_response(
        await service.delete_run(services.writer.run, principal.project_id, dataset_name, run_name)
    )
