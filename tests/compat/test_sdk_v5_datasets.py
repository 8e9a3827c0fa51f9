"""Datasets through the newest Langfuse Python SDK (5.x), unchanged, against a real
`tracehouse serve` (the compat harness's server subprocess).

The SDK client lives in this process, built from its public constructor arguments only (the
server URL and keys, a private OpenTelemetry ``TracerProvider``, an ``httpx.Client`` that
records the requests sent). Nothing of the SDK is patched.

SDK 5.x has no dataset-run methods (``langfuse.api.dataset_run_items``, ``datasets.get_runs``,
``get_run``, ``delete_run`` were removed with the move to experiments); the legacy run routes
are driven with the SDK lines that still call them: 3.x (``item.run()`` and the runs API) and
2.x (``item.link()`` with an observation id only), each in its cached venv as a subprocess.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import DatasetStatus, NotFoundError
from langfuse.api.core.api_error import ApiError

from tests.compat.conftest import (
    Server,
    assert_no_sdk_errors,
    run_sdk_script,
    sdk_client,
    sdk_script,
)

pytestmark = pytest.mark.compat

RUN = uuid.uuid4().hex[:10]
INPUT_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}},
    "required": ["question"],
}


class Sent:
    """The requests the SDK's API client sent (method and raw path), in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def hook(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.raw_path.decode()))


@pytest.fixture(scope="module")
def sent() -> Sent:
    return Sent()


@pytest.fixture(scope="module")
def lf(server: Server, sent: Sent) -> Iterator[Langfuse]:
    with sdk_client(server, "sdk5-datasets", {"request": [sent.hook]}) as client:
        yield client


def test_create_dataset_items_upsert_and_get_dataset(
    lf: Langfuse, server: Server, sent: Sent
) -> None:
    name = f"sdk5-{RUN}/qa"  # in a folder
    dataset = lf.create_dataset(
        name=name, description="questions", metadata={"owner": "ana"}, input_schema=INPUT_SCHEMA
    )
    assert dataset.name == name and dataset.input_schema == INPUT_SCHEMA
    assert dataset.metadata == {"owner": "ana"}

    first = lf.create_dataset_item(
        dataset_name=name,
        input={"question": "2+2?"},
        expected_output="4",
        metadata={"level": 1},
        source_trace_id=f"trace-{RUN}",
    )
    assert first.status == DatasetStatus.ACTIVE and first.dataset_id == dataset.id
    second = lf.create_dataset_item(
        dataset_name=name, id=f"second-{RUN}", input={"question": "capital of France?"}
    )
    assert second.id == f"second-{RUN}"

    # Update by id: only the status changes.
    archived = lf.create_dataset_item(dataset_name=name, id=first.id, status=DatasetStatus.ARCHIVED)
    assert archived.status == DatasetStatus.ARCHIVED
    assert archived.input == {"question": "2+2?"} and archived.expected_output == "4"
    assert archived.updated_at > first.updated_at

    # The dataset's input schema is enforced.
    with pytest.raises(ApiError) as refused:
        lf.create_dataset_item(dataset_name=name, input={"q": "no question"})
    assert refused.value.status_code == 400
    assert "inputSchema" in str(refused.value.body)

    fetched = lf.get_dataset(name)
    assert fetched.id == dataset.id and fetched.description == "questions"
    by_id = {item.id: item for item in fetched.items}
    assert set(by_id) == {first.id, second.id}
    assert by_id[first.id].status == DatasetStatus.ARCHIVED
    # get_dataset sent the folder name encoded.
    assert ("GET", f"/api/public/v2/datasets/{quote(name, safe='')}") in sent.requests

    # As of a version: the items as they were then.
    then = lf.get_dataset(name, version=first.updated_at)
    assert [(i.id, i.status) for i in then.items] == [(first.id, DatasetStatus.ACTIVE)]
    assert then.items[0].input == {"question": "2+2?"}
    between = lf.get_dataset(name, version=second.updated_at)
    assert {i.id: i.status for i in between.items} == {
        first.id: DatasetStatus.ACTIVE,
        second.id: DatasetStatus.ACTIVE,
    }
    versioned = [p for m, p in sent.requests if "version=" in p]
    assert versioned, sent.requests

    # Creating it again updates it (upsert on the name).
    updated = lf.create_dataset(name=name, description="more questions")
    assert updated.id == dataset.id and updated.description == "more questions"
    assert updated.metadata == {"owner": "ana"} and updated.input_schema == INPUT_SCHEMA


def test_api_datasets_and_dataset_items(lf: Langfuse, server: Server) -> None:
    name = f"sdk5-api-{RUN}"
    created = lf.api.datasets.create(name=name, metadata={"via": "api"})
    assert created.name == name

    listed = lf.api.datasets.list(page=1, limit=100)
    assert name in [d.name for d in listed.data]
    assert listed.meta.page == 1 and listed.meta.limit == 100
    assert lf.api.datasets.get(dataset_name=name).id == created.id

    item = lf.api.dataset_items.create(
        dataset_name=name, input="hello", expected_output="world", source_observation_id="obs-1"
    )
    other = lf.api.dataset_items.create(dataset_name=name, input="bye")
    assert lf.api.dataset_items.get(id=item.id).expected_output == "world"

    page = lf.api.dataset_items.list(dataset_name=name, page=1, limit=1)
    assert page.meta.total_items == 2 and page.meta.total_pages == 2 and len(page.data) == 1
    by_obs = lf.api.dataset_items.list(source_observation_id="obs-1", dataset_name=name)
    assert [i.id for i in by_obs.data] == [item.id]
    before_delete = lf.api.dataset_items.get(id=other.id).updated_at

    deleted = lf.api.dataset_items.delete(id=other.id)
    assert deleted.message == "Dataset item successfully deleted"
    with pytest.raises(NotFoundError):
        lf.api.dataset_items.get(id=other.id)
    assert [i.id for i in lf.api.dataset_items.list(dataset_name=name).data] == [item.id]
    # Still there as of a time before the delete.
    old = lf.api.dataset_items.list(dataset_name=name, version=before_delete)
    assert {i.id for i in old.data} == {item.id, other.id}

    with pytest.raises(NotFoundError):
        lf.api.datasets.get(dataset_name=f"{name}-missing")
    with pytest.raises(NotFoundError):
        lf.api.dataset_items.create(dataset_name=f"{name}-missing", input=1)

    # And the HTTP API agrees (every reply checked against the contract by server.get).
    body = server.get("/api/public/dataset-items", params={"datasetName": name}).json()
    assert [i["id"] for i in body["data"]] == [item.id]


LEGACY_RUNS_SDK3 = textwrap.dedent(
    """
    import json
    from langfuse import Langfuse

    lf = Langfuse()
    dataset = lf.get_dataset(NAME)
    item = dataset.items[0]
    with item.run(run_name=RUN_NAME, run_description="first try", run_metadata={"m": 1}) as span:
        span.update(output="answer")
        trace_id = span.trace_id
    lf.flush()
    runs = lf.api.datasets.get_runs(dataset_name=NAME)
    run = lf.api.datasets.get_run(dataset_name=NAME, run_name=RUN_NAME)
    listed = lf.api.dataset_run_items.list(dataset_id=dataset.id, run_name=RUN_NAME)
    deleted = lf.api.datasets.delete_run(dataset_name=NAME, run_name=RUN_NAME)
    after = lf.api.datasets.get_runs(dataset_name=NAME)
    print(json.dumps({
        "trace_id": trace_id,
        "item_id": item.id,
        "runs": [r.name for r in runs.data],
        "run": {
            "name": run.name,
            "description": run.description,
            "metadata": run.metadata,
            "items": [[i.dataset_item_id, i.trace_id] for i in run.dataset_run_items],
        },
        "listed": [i.trace_id for i in listed.data],
        "deleted": deleted.message,
        "after": [r.name for r in after.data],
    }))
    """
)


def test_legacy_runs_through_sdk3(lf: Langfuse, server: Server, sdk3_python: Path) -> None:
    name = f"sdk3-{RUN}/legacy"  # a folder name, sent unencoded by the 3.x runs API
    lf.create_dataset(name=name)
    lf.create_dataset_item(dataset_name=name, input="q")
    script = sdk_script(LEGACY_RUNS_SDK3, NAME=name, RUN_NAME="run one")
    result = run_sdk_script(sdk3_python, script, server)
    assert_no_sdk_errors(result)
    assert result["runs"] == ["run one"]
    assert result["run"]["description"] == "first try" and result["run"]["metadata"] == {"m": 1}
    assert result["run"]["items"] == [[result["item_id"], result["trace_id"]]]
    assert result["listed"] == [result["trace_id"]]
    assert result["deleted"] == "Dataset run successfully deleted"
    assert result["after"] == []


LEGACY_LINK_SDK2 = textwrap.dedent(
    """
    import json
    from langfuse import Langfuse

    lf = Langfuse()
    trace = lf.trace(name="legacy link")
    span = trace.span(name="answer", output="4")
    lf.flush()
    item = lf.get_dataset(NAME).items[0]
    item.link(span.id, RUN_NAME)  # an observation id only: the server finds its trace
    lf.flush()
    print(json.dumps({"trace_id": trace.id, "span_id": span.id, "item_id": item.id}))
    """
)


def test_legacy_link_by_observation_id_through_sdk2(
    lf: Langfuse, server: Server, sdk2_python: Path
) -> None:
    name = f"sdk2-{RUN}"
    dataset = lf.create_dataset(name=name)
    lf.create_dataset_item(dataset_name=name, input="q")
    script = sdk_script(LEGACY_LINK_SDK2, NAME=name, RUN_NAME="linked")
    result = run_sdk_script(sdk2_python, script, server)
    assert_no_sdk_errors(result)
    items: Any = server.get(
        "/api/public/dataset-run-items", params={"datasetId": dataset.id, "runName": "linked"}
    ).json()["data"]
    assert [(i["traceId"], i["observationId"], i["datasetItemId"]) for i in items] == [
        (result["trace_id"], result["span_id"], result["item_id"])
    ]
    run = server.http.get(f"/api/public/datasets/{quote(name, safe='')}/runs/linked").json()
    assert unquote(run["datasetName"]) == name and len(run["datasetRunItems"]) == 1
