"""Datasets, versioned dataset items and legacy dataset runs through HTTP, on SQLite and
PostgreSQL; every documented reply is checked against the OpenAPI contract."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts
from tracehouse.store.schema import dataset_items, dataset_run_items, dataset_runs, datasets

DS = "/api/public/v2/datasets"
ITEMS = "/api/public/dataset-items"
RUN_ITEMS = "/api/public/dataset-run-items"
RUNS_TEMPLATE = "/api/public/datasets/{datasetName}/runs"
RUN_TEMPLATE = "/api/public/datasets/{datasetName}/runs/{runName}"


def ok(r: Any, path: str | None = None) -> Any:
    assert r.status_code == 200, r.text
    assert_response_matches(r, path=path)
    return r.json()


def refused(r: Any, status: int, *words: str, path: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert_response_matches(r, path=path)
    body: dict[str, Any] = r.json()
    for word in words:
        assert word in body["message"], body
    return body


def enc(name: str) -> str:
    return quote(name, safe="")


def create_dataset(project, name: str, **body: Any) -> dict[str, Any]:
    return ok(project.post(DS, json={"name": name, **body}))


def create_item(project, dataset: str, **body: Any) -> dict[str, Any]:
    return ok(project.post(ITEMS, json={"datasetName": dataset, **body}))


def items(project, **params: Any) -> dict[str, Any]:
    return ok(project.get(ITEMS, params=params))


def runs_url(dataset: str, run: str | None = None) -> str:
    url = f"/api/public/datasets/{enc(dataset)}/runs"
    return url if run is None else f"{url}/{enc(run)}"


def at(stamp: str, ms: int = 0) -> str:
    """A reply's timestamp moved by ``ms`` milliseconds, as a ``version`` value."""
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def trace_with_observation(project) -> tuple[str, str]:
    trace_id, obs_id = new_id(), new_id()
    r = project.ingest(
        event("trace-create", {"id": trace_id, "name": "ran"}),
        event("span-create", {"id": obs_id, "traceId": trace_id, "startTime": ts(0)}),
    )
    assert r.status_code == 207 and r.json()["errors"] == [], r.text
    return trace_id, obs_id


# --- datasets --------------------------------------------------------------------------------


def test_create_get_list_and_upsert_dataset(project) -> None:
    name = f"ds-{new_id()[:8]}"
    created = create_dataset(project, name, description="first", metadata={"owner": "ana"})
    assert created["name"] == name and created["projectId"] == project.id
    assert created["description"] == "first" and created["metadata"] == {"owner": "ana"}
    assert created["inputSchema"] is None and created["expectedOutputSchema"] is None

    # Creating an existing name updates the fields given; absent or null ones stay.
    again = create_dataset(project, name, description="second", metadata=None)
    assert again["id"] == created["id"]
    assert again["description"] == "second" and again["metadata"] == {"owner": "ana"}
    assert again["createdAt"] == created["createdAt"]
    assert again["updatedAt"] >= created["updatedAt"]

    fetched = ok(project.get(f"{DS}/{enc(name)}"))
    assert fetched == again

    for i in range(3):
        create_dataset(project, f"{name}-{i}")
    page = ok(project.get(DS, params={"page": 2, "limit": 3}))
    assert page["meta"] == {"page": 2, "limit": 3, "totalItems": 4, "totalPages": 2}
    assert len(page["data"]) == 1
    everything = ok(project.get(DS))["data"]
    assert [d["name"] for d in everything] == [f"{name}-2", f"{name}-1", f"{name}-0", name]

    refused(project.get(f"{DS}/missing-{name}"), 404, "not found")


def test_dataset_folders(project) -> None:
    name = f"evaluation-{new_id()[:6]}/qa/set"
    created = create_dataset(project, name)
    # Encoded (as the SDKs send it) and plain slashes both find it.
    assert ok(project.get(f"{DS}/{enc(name)}"))["id"] == created["id"]
    assert ok(project.get(f"{DS}/{name}"), path=f"{DS}/{{datasetName}}")["id"] == created["id"]
    item = create_item(project, name, input="q")
    assert item["datasetName"] == name
    assert [i["id"] for i in items(project, datasetName=name)["data"]] == [item["id"]]
    for bad in ("/lead", "trail/", "a//b"):
        refused(project.post(DS, json={"name": bad}), 400, "name")


def test_dataset_bad_input(project) -> None:
    refused(project.post(DS, json={"description": "no name"}), 400, "name")
    refused(project.post(DS, json={"name": ""}), 400, "name")
    refused(project.post(DS, json=["not", "an", "object"]), 400, "body")
    refused(project.post(DS, content=b"{nope", headers={"content-type": "application/json"}), 400)
    refused(project.post(DS, json={"name": "x", "description": 3}), 400, "description")
    refused(
        project.post(DS, json={"name": "x", "inputSchema": {"type": "no-such-type"}}),
        400,
        "inputSchema",
        "not a valid JSON Schema",
    )
    refused(
        project.post(DS, json={"name": "x", "expectedOutputSchema": "string"}),
        400,
        "expectedOutputSchema",
    )
    refused(project.get(DS, params={"limit": 0}), 400, "limit")
    refused(project.get(DS, params={"page": 0}), 400, "page")
    assert ok(project.get(DS))["data"] == []  # nothing was created by the refused requests


# --- JSON Schema -----------------------------------------------------------------------------

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}},
    "required": ["question"],
}
OUTPUT_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


def test_items_are_validated_against_the_dataset_schemas(project) -> None:
    name = f"schema-{new_id()[:8]}"
    created = create_dataset(
        project, name, inputSchema=INPUT_SCHEMA, expectedOutputSchema=OUTPUT_SCHEMA
    )
    assert created["inputSchema"] == INPUT_SCHEMA
    assert created["expectedOutputSchema"] == OUTPUT_SCHEMA

    good = create_item(project, name, input={"question": "2+2?"}, expectedOutput={"answer": "4"})
    refused(
        project.post(ITEMS, json={"datasetName": name, "input": {"q": 1}}),
        400,
        "input",
        "inputSchema",
        "'question' is a required property",
    )
    refused(
        project.post(
            ITEMS,
            json={"datasetName": name, "input": {"question": "?"}, "expectedOutput": {"answer": 4}},
        ),
        400,
        "expectedOutput",
        "expectedOutputSchema",
        "/answer",
    )
    # An update is checked on the item as it would become; a refused one changes nothing.
    refused(
        project.post(ITEMS, json={"datasetName": name, "id": good["id"], "input": "text"}),
        400,
        "inputSchema",
    )
    assert ok(project.get(f"{ITEMS}/{good['id']}"))["input"] == {"question": "2+2?"}
    # No expected output is not checked.
    create_item(project, name, input={"question": "no answer"})

    # A new schema must hold for every current item of the dataset.
    refused(
        project.post(
            DS, json={"name": name, "expectedOutputSchema": {"type": "object", "required": ["x"]}}
        ),
        400,
        "expectedOutputSchema",
        good["id"],
    )
    assert ok(project.get(f"{DS}/{enc(name)}"))["expectedOutputSchema"] == OUTPUT_SCHEMA
    loose = create_dataset(project, name, inputSchema={"type": ["object", "string"]})
    assert loose["inputSchema"] == {"type": ["object", "string"]}
    assert loose["expectedOutputSchema"] == OUTPUT_SCHEMA
    create_item(project, name, input="now a string is fine")


# --- items -----------------------------------------------------------------------------------


def test_item_create_upsert_get_list(project) -> None:
    name = f"items-{new_id()[:8]}"
    dataset = create_dataset(project, name)
    trace_id, obs_id = new_id(), new_id()
    first = create_item(
        project,
        name,
        input={"q": 1},
        expectedOutput={"a": 1},
        metadata={"m": 1},
        sourceTraceId=trace_id,
        sourceObservationId=obs_id,
    )
    assert first["status"] == "ACTIVE" and first["mediaReferences"] == []
    assert first["datasetId"] == dataset["id"] and first["datasetName"] == name
    assert first["createdAt"] == first["updatedAt"]

    # Upsert on id: only the fields given change.
    archived = create_item(project, name, id=first["id"], status="ARCHIVED")
    assert archived["status"] == "ARCHIVED"
    assert archived["input"] == {"q": 1} and archived["expectedOutput"] == {"a": 1}
    assert archived["metadata"] == {"m": 1} and archived["sourceTraceId"] == trace_id
    assert archived["createdAt"] == first["createdAt"]
    assert archived["updatedAt"] > first["updatedAt"]
    assert ok(project.get(f"{ITEMS}/{first['id']}")) == archived

    mine = create_item(project, name, id="my-own-id", input="x")
    assert mine["id"] == "my-own-id"
    again = create_item(project, name, id="my-own-id", input="y", status="ACTIVE")
    assert again["input"] == "y"

    listed = items(project, datasetName=name)
    assert listed["meta"]["totalItems"] == 2
    assert [i["id"] for i in listed["data"]] == ["my-own-id", first["id"]]  # newest first
    assert [i["id"] for i in items(project, sourceTraceId=trace_id)["data"]] == [first["id"]]
    by_obs = items(project, sourceObservationId=obs_id, datasetName=name)["data"]
    assert [i["id"] for i in by_obs] == [first["id"]]
    assert items(project, sourceTraceId="nope")["data"] == []
    paged = items(project, datasetName=name, page=2, limit=1)
    assert paged["meta"] == {"page": 2, "limit": 1, "totalItems": 2, "totalPages": 2}
    assert [i["id"] for i in paged["data"]] == [first["id"]]
    assert items(project)["meta"]["totalItems"] == 2  # every dataset of the project


def test_item_bad_input(project) -> None:
    name = f"bad-items-{new_id()[:8]}"
    create_dataset(project, name)
    other = f"{name}-other"
    create_dataset(project, other)
    taken = create_item(project, name, input=1)

    refused(project.post(ITEMS, json={"input": 1}), 400, "datasetName")
    refused(project.post(ITEMS, json={"datasetName": f"{name}-missing"}), 404, "not found")
    refused(project.post(ITEMS, json={"datasetName": name, "status": "DONE"}), 400, "status")
    refused(project.post(ITEMS, json={"datasetName": name, "id": 7}), 400, "id")
    refused(project.post(ITEMS, json={"datasetName": name, "id": "x" * 256}), 400, "id")
    refused(
        project.post(ITEMS, json={"datasetName": name, "sourceTraceId": 5}), 400, "sourceTraceId"
    )
    # An item id is unique in the project: not reusable in another dataset.
    body = refused(
        project.post(ITEMS, json={"datasetName": other, "id": taken["id"]}), 400, "id", name
    )
    assert "cannot be reused across datasets" in body["message"]
    assert items(project, datasetName=other)["data"] == []
    refused(project.get(f"{ITEMS}/missing"), 404, "not found")
    refused(project.delete(f"{ITEMS}/missing"), 404, "not found")
    refused(project.get(ITEMS, params={"datasetName": f"{name}-missing"}), 404, "not found")


# --- versions --------------------------------------------------------------------------------


def _ids(page: dict[str, Any]) -> list[str]:
    return sorted(i["id"] for i in page["data"])


def test_items_as_of_versions(project) -> None:
    name = f"versions-{new_id()[:8]}"
    create_dataset(project, name)
    a1 = create_item(project, name, id=f"a-{name}", input="a1")
    b1 = create_item(project, name, id=f"b-{name}", input="b1")
    a2 = create_item(project, name, id=a1["id"], input="a2")
    a3 = create_item(project, name, id=a1["id"], status="ARCHIVED")
    deleted = ok(project.delete(f"{ITEMS}/{a1['id']}"))
    assert deleted == {"message": "Dataset item successfully deleted"}

    def as_of(version: str) -> dict[str, dict[str, Any]]:
        page = items(project, datasetName=name, version=version)
        return {i["id"]: i for i in page["data"]}

    assert as_of(at(a1["createdAt"], -1)) == {}  # before anything
    first = as_of(a1["updatedAt"])
    assert list(first) == [a1["id"]] and first[a1["id"]]["input"] == "a1"
    both = as_of(at(a2["updatedAt"], -1))  # between the first update and the create of b
    assert {k: v["input"] for k, v in both.items()} == {a1["id"]: "a1", b1["id"]: "b1"}
    assert both[a1["id"]] == a1  # exactly as it was returned then
    updated = as_of(a2["updatedAt"])
    assert updated[a1["id"]]["input"] == "a2" and updated[a1["id"]]["status"] == "ACTIVE"
    archived = as_of(a3["updatedAt"])  # the last state before the delete
    assert archived[a1["id"]]["status"] == "ARCHIVED" and archived[a1["id"]]["input"] == "a2"
    assert archived[a1["id"]]["createdAt"] == a1["createdAt"]
    assert list(as_of("2999-01-01T00:00:00Z")) == [b1["id"]]  # after the delete
    assert _ids(items(project, datasetName=name)) == [b1["id"]]  # now

    # Reads of the current state no longer see the deleted item.
    refused(project.get(f"{ITEMS}/{a1['id']}"), 404)
    refused(project.delete(f"{ITEMS}/{a1['id']}"), 404)
    # A deleted id may be used again: a new item (created anew), older versions untouched.
    reborn = create_item(project, name, id=a1["id"], input="again")
    assert reborn["createdAt"] > a1["createdAt"] and reborn["status"] == "ACTIVE"
    assert as_of(a3["updatedAt"])[a1["id"]]["input"] == "a2"
    assert as_of(reborn["updatedAt"])[a1["id"]]["input"] == "again"

    # Time zones and offsets name the same instant.
    utc = datetime.fromisoformat(a2["updatedAt"].replace("Z", "+00:00"))
    plus_two = utc.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+02:00").tzinfo)
    assert as_of(plus_two.isoformat())[a1["id"]]["input"] == "a2"

    refused(project.get(ITEMS, params={"version": a2["updatedAt"]}), 400, "version", "datasetName")
    refused(
        project.get(ITEMS, params={"datasetName": name, "version": "yesterday"}), 400, "version"
    )


def test_rapid_updates_get_distinct_versions(project) -> None:
    name = f"rapid-{new_id()[:8]}"
    create_dataset(project, name)
    versions = [create_item(project, name, id=f"r-{name}", input=i) for i in range(5)]
    stamps = [v["updatedAt"] for v in versions]
    assert stamps == sorted(set(stamps))  # strictly increasing, never shared
    for i, stamp in enumerate(stamps):
        (item,) = items(project, datasetName=name, version=stamp)["data"]
        assert item["input"] == i


# --- runs and run items ----------------------------------------------------------------------


def test_run_items_runs_and_run_deletion(project) -> None:
    name = f"runs-{new_id()[:6]}/folder"
    dataset = create_dataset(project, name)
    item = create_item(project, name, input="q1")
    item2 = create_item(project, name, input="q2")
    trace_id, obs_id = trace_with_observation(project)

    first = ok(
        project.post(
            RUN_ITEMS,
            json={
                "runName": "run 1",
                "runDescription": "baseline",
                "metadata": {"model": "a"},
                "datasetItemId": item["id"],
                "traceId": trace_id,
                "datasetVersion": item["updatedAt"],
            },
        )
    )
    assert first["datasetRunName"] == "run 1" and first["traceId"] == trace_id
    assert first["observationId"] is None and first["datasetItemId"] == item["id"]

    # observationId alone: the trace comes from the stored observation.
    by_obs = ok(
        project.post(
            RUN_ITEMS,
            json={
                "runName": "run 1",
                "datasetItemId": item2["id"],
                "observationId": obs_id,
                "createdAt": "2026-01-01T00:00:00.000Z",
            },
        )
    )
    assert by_obs["traceId"] == trace_id and by_obs["observationId"] == obs_id
    assert by_obs["datasetRunId"] == first["datasetRunId"]
    assert by_obs["createdAt"] == "2026-01-01T00:00:00.000Z"

    other_run = ok(
        project.post(
            RUN_ITEMS, json={"runName": "run/2", "datasetItemId": item["id"], "traceId": trace_id}
        )
    )
    assert other_run["datasetRunId"] != first["datasetRunId"]

    runs = ok(project.get(runs_url(name)), path=RUNS_TEMPLATE)
    assert runs["meta"]["totalItems"] == 2
    assert {r["name"] for r in runs["data"]} == {"run 1", "run/2"}
    run1 = next(r for r in runs["data"] if r["name"] == "run 1")
    assert run1["description"] == "baseline" and run1["metadata"] == {"model": "a"}
    assert run1["datasetId"] == dataset["id"] and run1["datasetName"] == name
    paged = ok(project.get(runs_url(name), params={"limit": 1, "page": 2}), path=RUNS_TEMPLATE)
    assert paged["meta"] == {"page": 2, "limit": 1, "totalItems": 2, "totalPages": 2}

    # A later run item's description and metadata update the run.
    ok(
        project.post(
            RUN_ITEMS,
            json={
                "runName": "run 1",
                "runDescription": "tuned",
                "datasetItemId": item2["id"],
                "traceId": trace_id,
            },
        )
    )
    run = ok(project.get(runs_url(name, "run 1")), path=RUN_TEMPLATE)
    assert run["description"] == "tuned" and run["metadata"] == {"model": "a"}
    assert len(run["datasetRunItems"]) == 3
    assert {i["datasetRunName"] for i in run["datasetRunItems"]} == {"run 1"}
    # A run name with a slash, sent encoded.
    slashed = ok(project.get(runs_url(name, "run/2")), path=RUN_TEMPLATE)
    assert [i["id"] for i in slashed["datasetRunItems"]] == [other_run["id"]]

    listed = ok(
        project.get(RUN_ITEMS, params={"datasetId": dataset["id"], "runName": "run 1", "limit": 2})
    )
    assert listed["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2}
    assert by_obs["id"] not in [i["id"] for i in listed["data"]]  # the oldest is on page 2

    # Scores naming the run stay when it is deleted (as in Langfuse).
    score = project.post(
        "/api/public/scores",
        json={"name": "accuracy", "value": 0.9, "datasetRunId": first["datasetRunId"]},
    )
    assert score.status_code == 200, score.text
    deleted = ok(project.delete(runs_url(name, "run 1")), path=RUN_TEMPLATE)
    assert deleted == {"message": "Dataset run successfully deleted"}
    refused(project.get(runs_url(name, "run 1")), 404, "not found", path=RUN_TEMPLATE)
    refused(project.delete(runs_url(name, "run 1")), 404, path=RUN_TEMPLATE)
    refused(project.get(RUN_ITEMS, params={"datasetId": dataset["id"], "runName": "run 1"}), 404)
    assert [r["name"] for r in ok(project.get(runs_url(name)), path=RUNS_TEMPLATE)["data"]] == [
        "run/2"
    ]
    services = project.http.app.state.services
    with services.engine.connect() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(dataset_run_items)
            .where(dataset_run_items.c.run_id == first["datasetRunId"])
        ).scalar_one()
    assert left == 0
    score_id = score.json()["id"]
    kept = project.get(f"/api/public/v2/scores/{score_id}")
    assert kept.status_code == 200 and kept.json()["datasetRunId"] == first["datasetRunId"]
    # The items themselves are untouched.
    assert _ids(items(project, datasetName=name)) == sorted([item["id"], item2["id"]])


def test_run_item_bad_input(project) -> None:
    name = f"run-bad-{new_id()[:8]}"
    dataset = create_dataset(project, name)
    item = create_item(project, name, input=1)
    base = {"runName": "r", "datasetItemId": item["id"]}
    refused(project.post(RUN_ITEMS, json=base), 400, "traceId")
    refused(project.post(RUN_ITEMS, json={**base, "runName": ""}), 400, "runName")
    refused(project.post(RUN_ITEMS, json={"runName": "r", "traceId": "t"}), 400, "datasetItemId")
    refused(
        project.post(RUN_ITEMS, json={**base, "datasetItemId": "missing", "traceId": "t"}),
        404,
        "not found",
    )
    refused(project.post(RUN_ITEMS, json={**base, "observationId": "missing"}), 404, "Observation")
    refused(
        project.post(RUN_ITEMS, json={**base, "traceId": "t", "createdAt": "soon"}),
        400,
        "createdAt",
    )
    refused(
        project.post(RUN_ITEMS, json={**base, "traceId": "t", "datasetVersion": 5}),
        400,
        "datasetVersion",
    )
    refused(project.get(RUN_ITEMS, params={"datasetId": dataset["id"]}), 400, "runName")
    refused(project.get(RUN_ITEMS, params={"runName": "r"}), 400, "datasetId")
    refused(project.get(RUN_ITEMS, params={"datasetId": "missing", "runName": "r"}), 404)
    refused(project.get(runs_url(f"{name}-missing")), 404, path=RUNS_TEMPLATE)
    refused(project.get(runs_url(name, "missing")), 404, path=RUN_TEMPLATE)
    assert ok(project.get(runs_url(name)), path=RUNS_TEMPLATE)["data"] == []


def test_deleting_an_item_deletes_its_run_items(project) -> None:
    name = f"item-del-{new_id()[:8]}"
    create_dataset(project, name)
    keep = create_item(project, name, input="keep")
    gone = create_item(project, name, input="gone")
    trace_id, _ = trace_with_observation(project)
    for item in (keep, gone):
        ok(
            project.post(
                RUN_ITEMS, json={"runName": "r", "datasetItemId": item["id"], "traceId": trace_id}
            )
        )
    ok(project.delete(f"{ITEMS}/{gone['id']}"))
    run = ok(project.get(runs_url(name, "r")), path=RUN_TEMPLATE)
    assert [i["datasetItemId"] for i in run["datasetRunItems"]] == [keep["id"]]
    refused(
        project.post(RUN_ITEMS, json={"runName": "r", "datasetItemId": gone["id"], "traceId": "t"}),
        404,
    )


def _rows_of_dataset(project, dataset_id: str, run_ids: list[str], item_ids: list[str]) -> int:
    services = project.http.app.state.services
    with services.engine.connect() as conn:
        counts = [
            conn.execute(
                select(func.count()).select_from(datasets).where(datasets.c.id == dataset_id)
            ).scalar_one(),
            conn.execute(
                select(func.count())
                .select_from(dataset_items)
                .where(dataset_items.c.dataset_id == dataset_id)
            ).scalar_one(),
            conn.execute(
                select(func.count())
                .select_from(dataset_runs)
                .where(dataset_runs.c.dataset_id == dataset_id)
            ).scalar_one(),
            conn.execute(
                select(func.count())
                .select_from(dataset_run_items)
                .where(
                    dataset_run_items.c.run_id.in_(run_ids)
                    | dataset_run_items.c.dataset_item_id.in_(item_ids)
                )
            ).scalar_one(),
        ]
    return sum(counts)


def test_delete_dataset_leaves_no_orphans(project) -> None:
    name = f"del-{new_id()[:6]}/ds"
    neighbour = f"{name}-neighbour"
    dataset = create_dataset(project, name)
    create_dataset(project, neighbour)
    item = create_item(project, name, input=1)
    create_item(project, name, id=item["id"], input=2)  # two versions
    create_item(project, name, input=3)
    other = create_item(project, neighbour, input="n")
    trace_id, _ = trace_with_observation(project)
    run_item = ok(
        project.post(
            RUN_ITEMS, json={"runName": "r", "datasetItemId": item["id"], "traceId": trace_id}
        )
    )
    ok(
        project.post(
            RUN_ITEMS, json={"runName": "r", "datasetItemId": other["id"], "traceId": trace_id}
        )
    )
    item_ids = [i["id"] for i in items(project, datasetName=name)["data"]]
    assert _rows_of_dataset(project, dataset["id"], [run_item["datasetRunId"]], item_ids) > 0

    r = project.delete(f"{DS}/{enc(name)}")  # a tracehouse route: not in the Langfuse spec
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Dataset successfully deleted"}
    assert _rows_of_dataset(project, dataset["id"], [run_item["datasetRunId"]], item_ids) == 0

    refused(project.get(f"{DS}/{enc(name)}"), 404)
    refused(project.get(ITEMS, params={"datasetName": name}), 404)
    refused(project.get(f"{ITEMS}/{item['id']}"), 404)
    refused(project.get(runs_url(name)), 404, path=RUNS_TEMPLATE)
    assert project.delete(f"{DS}/{enc(name)}").status_code == 404
    # Everything else still reads: the neighbour, its items and runs, the whole lists.
    assert [i["id"] for i in items(project)["data"]] == [other["id"]]
    assert [d["name"] for d in ok(project.get(DS))["data"]] == [neighbour]
    assert len(ok(project.get(runs_url(neighbour, "r")), path=RUN_TEMPLATE)["datasetRunItems"]) == 1
    # The name and the item ids are free again.
    again = create_dataset(project, name)
    assert again["id"] != dataset["id"]
    assert items(project, datasetName=name)["data"] == []
    assert create_item(project, name, id=item["id"], input="new")["input"] == "new"


def test_projects_are_isolated(project, other_project) -> None:
    name = f"shared-name-{new_id()[:8]}"
    mine = create_dataset(project, name, description="mine")
    item = create_item(project, name, id=f"item-{name}", input="mine")
    trace_id, _ = trace_with_observation(project)
    ok(
        project.post(
            RUN_ITEMS, json={"runName": "r", "datasetItemId": item["id"], "traceId": trace_id}
        )
    )

    refused(other_project.get(f"{DS}/{enc(name)}"), 404)
    assert ok(other_project.get(DS))["data"] == []
    assert items(other_project)["data"] == []
    refused(other_project.get(f"{ITEMS}/{item['id']}"), 404)
    refused(other_project.delete(f"{ITEMS}/{item['id']}"), 404)
    refused(other_project.get(runs_url(name)), 404, path=RUNS_TEMPLATE)
    refused(other_project.get(RUN_ITEMS, params={"datasetId": mine["id"], "runName": "r"}), 404)
    refused(
        other_project.post(
            RUN_ITEMS, json={"runName": "r", "datasetItemId": item["id"], "traceId": "t"}
        ),
        404,
    )
    assert other_project.delete(f"{DS}/{enc(name)}").status_code == 404

    # The same dataset name and item id are the other project's own.
    theirs = create_dataset(other_project, name, description="theirs")
    assert theirs["id"] != mine["id"]
    their_item = create_item(other_project, name, id=item["id"], input="theirs")
    assert their_item["datasetId"] == theirs["id"]
    assert ok(project.get(f"{ITEMS}/{item['id']}"))["input"] == "mine"
    assert ok(project.get(f"{DS}/{enc(name)}"))["description"] == "mine"


def test_routes_need_a_secret_key(project) -> None:
    r = project.http.get(DS)
    assert r.status_code == 401, r.text
    bearer = {"Authorization": f"Bearer {project.public_key}"}
    assert project.http.get(ITEMS, headers=bearer).status_code == 403


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/api/public/datasets/a/runs", ("a", None)),
        ("/api/public/datasets/a%2Fb/runs/r%2F1", ("a/b", "r/1")),
        ("/api/public/datasets/a/b/runs/r", ("a/b", "r")),
        ("/api/public/datasets/runs/runs", ("runs", None)),
        ("/api/public/datasets/a%2Fruns%2Fb/runs/x", ("a/runs/b", "x")),
        ("/api/public/datasets/caf%C3%A9/runs/%E2%9C%93", ("café", "✓")),
    ],
)
def test_run_path_parsing(raw: str, expected: tuple[str, str | None]) -> None:
    from starlette.requests import Request

    from tracehouse.api.datasets import run_path

    scope = {
        "type": "http",
        "path": raw,
        "raw_path": raw.encode(),
        "headers": [],
        "query_string": b"",
    }
    assert run_path(Request(scope)) == expected
