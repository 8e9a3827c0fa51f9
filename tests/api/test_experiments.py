"""GET /api/public/experiments and /api/public/experiment-items (and the score aggregates
extension), on experiment spans sent over OTLP the way the SDKs' experiment runners send them.

Each item is a trace of three spans: ``experiment-item-run`` (parent), ``experiment-item-task``
(the item's root observation: its id is ``langfuse.experiment.item.root_observation_id``) and an
evaluator span; every span carries the ``langfuse.experiment.*`` attributes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.api.test_otlp import export, kv
from tests.conftest import Project
from tests.contract import assert_response_matches

OTLP = "/api/public/otel/v1/traces"
EXPERIMENTS = "/api/public/experiments"
ITEMS = "/api/public/experiment-items"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
SEC = 1_000_000_000
FROM = "2025-12-31T00:00:00Z"
ALL_ITEM_GROUPS = "core,dataset,io,metadata,itemMetadata,experimentMetadata,scores"


def iso(ns: int) -> str:
    from datetime import UTC, datetime

    ts = datetime.fromtimestamp(ns / 1e9, UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass
class Item:
    experiment_id: str
    name: str
    item_id: str
    trace_id: str
    root_id: str
    start: int
    end: int
    input: Any
    output: Any
    expected: Any
    item_metadata: dict[str, Any]
    dataset_id: str | None = None
    error: bool = False
    score_ids: list[str] = field(default_factory=list)


def _experiment_attrs(item: Item, description: str, metadata: dict[str, Any]) -> list[Any]:
    attrs = {
        "langfuse.environment": "sdk-experiment",
        "langfuse.experiment.id": item.experiment_id,
        "langfuse.experiment.name": item.name,
        "langfuse.experiment.description": description,
        "langfuse.experiment.item.id": item.item_id,
        "langfuse.experiment.item.root_observation_id": item.root_id,
        "langfuse.experiment.item.expected_output": json.dumps(item.expected),
        "langfuse.experiment.metadata": json.dumps(metadata),
        "langfuse.experiment.item.metadata": json.dumps(item.item_metadata),
    }
    if item.dataset_id:
        attrs["langfuse.experiment.dataset.id"] = item.dataset_id
        attrs["langfuse.experiment.item.version"] = "2026-01-01T00:00:00.250Z"
    return [kv(k, v) for k, v in attrs.items()]


def send_item(project: Project, item: Item, description: str, metadata: dict[str, Any]) -> None:
    trace_id = bytes.fromhex(item.trace_id)
    run_id = os.urandom(8)
    common = _experiment_attrs(item, description, metadata)
    run = Span(
        trace_id=trace_id,
        span_id=run_id,
        name="experiment-item-run",
        start_time_unix_nano=item.start - SEC // 10,
        end_time_unix_nano=item.end + SEC,
        attributes=[*common, kv("langfuse.observation.input", json.dumps(item.input))],
    )
    task = Span(
        trace_id=trace_id,
        span_id=bytes.fromhex(item.root_id),
        parent_span_id=run_id,
        name="experiment-item-task",
        start_time_unix_nano=item.start,
        end_time_unix_nano=item.end,
        attributes=[
            *common,
            kv("langfuse.observation.input", json.dumps(item.input)),
            kv("langfuse.observation.output", json.dumps(item.output)),
            kv("langfuse.observation.metadata.experiment_name", item.name),
            kv("langfuse.observation.metadata.topic", item.item_metadata.get("topic", "")),
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom") if item.error else None,
    )
    evaluator = Span(
        trace_id=trace_id,
        span_id=os.urandom(8),
        parent_span_id=run_id,
        name="accuracy",
        start_time_unix_nano=item.end + SEC // 10,
        end_time_unix_nano=item.end + SEC // 2,
        attributes=[*common, kv("langfuse.observation.type", "evaluator")],
    )
    r = project.post(
        OTLP,
        content=export(run, task, evaluator).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text


def post_score(project: Project, **body: Any) -> str:
    r = project.post("/api/public/scores", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@dataclass
class World:
    a: list[Item]  # experiment A: 3 items, dataset ds-a, scores per item, run scores
    b: list[Item]  # experiment B: 2 items, no dataset, later
    run_scores: list[str]


EXP_A, EXP_B = "exp-aaaa", "exp-bbbb"
META_A = {"model": "gpt-4o", "temperature": 0}


def build(project: Project, suffix: str = "") -> World:
    a = [
        Item(
            EXP_A + suffix,
            "baseline run",
            f"item-a{i}",
            os.urandom(16).hex(),
            os.urandom(8).hex(),
            T0 + i * SEC,
            T0 + i * SEC + SEC // 2,
            {"q": f"question {i}"},
            {"a": f"answer {i}"},
            {"a": f"expected {i}"},
            {"topic": "math" if i % 2 == 0 else "geo", "i": i},
            dataset_id="ds-a",
            error=i == 1,
        )
        for i in range(3)
    ]
    b = [
        Item(
            EXP_B + suffix,
            "candidate run",
            f"item-b{i}",
            os.urandom(16).hex(),
            os.urandom(8).hex(),
            T0 + (10 + i) * SEC,
            T0 + (10 + i) * SEC + SEC,
            f"plain input {i}",
            f"plain output {i}",
            f"plain expected {i}",
            {"topic": "plain"},
        )
        for i in range(2)
    ]
    for item in a:
        send_item(project, item, "the baseline", META_A)
    for item in b:
        send_item(project, item, "the candidate", {"model": "small"})
    for i, item in enumerate(a):
        item.score_ids.append(
            post_score(
                project,
                traceId=item.trace_id,
                observationId=item.root_id,
                name="accuracy",
                value=i / 2,
                comment=f"c{i}",
            )
        )
        item.score_ids.append(
            post_score(
                project,
                traceId=item.trace_id,
                name="verdict",
                value="good" if i else "bad",
                dataType="CATEGORICAL",
            )
        )
    run_scores = [
        post_score(project, datasetRunId=EXP_A + suffix, name="avg_accuracy", value=0.5),
        post_score(project, datasetRunId=EXP_A + suffix, name="pass_rate", value=0.75),
    ]
    return World(a, b, run_scores)


@pytest.fixture
def world(project: Project) -> World:
    return build(project)


def get(project: Project, path: str, **params: Any) -> dict[str, Any]:
    r = project.get(path, params=params)
    assert r.status_code == 200, r.text
    assert_response_matches(r)
    return r.json()  # type: ignore[no-any-return]


def bad(project: Project, path: str, param: str, **params: Any) -> str:
    r = project.get(path, params=params)
    assert r.status_code == 400, r.text
    assert_response_matches(r)
    message = r.json()["message"]
    assert param in message, message
    return str(message)


# -- experiment items --------------------------------------------------------------------------


def test_item_has_every_field_with_all_groups(project: Project, world: World) -> None:
    body = get(project, ITEMS, fromStartTime=FROM, experimentId=EXP_A, fields=ALL_ITEM_GROUPS)
    assert [d["id"] for d in body["data"]] == [i.root_id for i in reversed(world.a)]
    assert body["meta"].get("cursor") is None
    item = world.a[0]
    got = body["data"][-1]
    scores = got.pop("scores")
    assert got == {
        "id": item.root_id,
        "traceId": item.trace_id,
        "startTime": "2026-01-01T00:00:00.000Z",
        "endTime": "2026-01-01T00:00:00.500Z",
        "level": "DEFAULT",
        "environment": "sdk-experiment",
        "experimentId": EXP_A,
        "experimentName": "baseline run",
        "experimentItemId": "item-a0",
        "experimentDatasetId": "ds-a",
        "experimentItemVersion": "2026-01-01T00:00:00.250Z",
        "input": {"q": "question 0"},
        "output": {"a": "answer 0"},
        "expectedOutput": {"a": "expected 0"},
        "metadata": got["metadata"],
        "experimentItemMetadata": {"topic": "math", "i": 0},
        "experimentMetadata": META_A,
        "experimentDescription": "the baseline",
    }
    assert got["metadata"]["topic"] == "math"
    assert got["metadata"]["experiment_name"] == "baseline run"
    # The item's trace scores, newest first, as ScoreV3 (with details and subject).
    assert [s["id"] for s in scores] == list(reversed(item.score_ids))
    verdict, accuracy = scores
    assert verdict["dataType"] == "CATEGORICAL" and verdict["value"] == "bad"
    assert verdict["subject"] == {"kind": "trace", "id": item.trace_id}
    assert accuracy["value"] == 0.0 and accuracy["comment"] == "c0"
    assert accuracy["subject"] == {
        "kind": "observation",
        "id": item.root_id,
        "traceId": item.trace_id,
    }
    # The failed item carries its level.
    assert body["data"][1]["level"] == "ERROR"


def test_items_default_groups_are_core_and_dataset(project: Project, world: World) -> None:
    body = get(project, ITEMS, fromStartTime=FROM)
    # Only the item roots (not the run or evaluator spans), newest first across experiments.
    expected = [i.root_id for i in sorted(world.a + world.b, key=lambda i: -i.start)]
    assert [d["id"] for d in body["data"]] == expected
    first = body["data"][0]
    assert set(first) == {
        "id",
        "traceId",
        "startTime",
        "endTime",
        "level",
        "environment",
        "experimentId",
        "experimentName",
        "experimentItemId",
        "experimentDatasetId",
        "experimentItemVersion",
        "expectedOutput",
    }
    assert first["experimentDatasetId"] is None and first["experimentItemVersion"] is None
    assert first["expectedOutput"] == "plain expected 1"
    core = get(project, ITEMS, fromStartTime=FROM, fields="core", limit=1)["data"][0]
    assert "experimentDatasetId" not in core and "input" not in core and "scores" not in core


def test_items_io_returns_strings_as_sent(project: Project, world: World) -> None:
    body = get(project, ITEMS, fromStartTime=FROM, experimentId=EXP_B, fields="io")
    got = body["data"][0]
    assert got["input"] == "plain input 1" and got["output"] == "plain output 1"
    assert got["expectedOutput"] == "plain expected 1"
    assert "experimentItemMetadata" not in got


def test_items_cursor_pages_walk_everything_once(project: Project, world: World) -> None:
    everything = get(project, ITEMS, fromStartTime=FROM)["data"]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"fromStartTime": FROM, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = get(project, ITEMS, **params)
        seen += [d["id"] for d in body["data"]]
        pages += 1
        cursor = body["meta"].get("cursor")
        if not cursor:
            break
    assert pages == 3
    assert seen == [d["id"] for d in everything]


def test_items_score_limit(project: Project, world: World) -> None:
    body = get(
        project, ITEMS, fromStartTime=FROM, experimentId=EXP_A, fields="scores", scoreLimit=1
    )
    for got, item in zip(body["data"], reversed(world.a), strict=True):
        assert [s["id"] for s in got["scores"]] == [item.score_ids[-1]]
    body = get(project, ITEMS, fromStartTime=FROM, experimentId=EXP_B, fields="scores")
    assert all(d["scores"] == [] for d in body["data"])


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"experimentId": f"{EXP_B},nope"}, "b"),
        ({"experimentId": f" {EXP_A} , {EXP_B} "}, "ab"),
        ({"experimentName": "baseline run"}, "a"),
        ({"experimentItemId": "item-a1,item-b0"}, ["item-b0", "item-a1"]),
        ({"datasetId": "ds-a"}, "a"),
        ({"datasetId": "ds-zzz"}, ""),
        ({"toStartTime": "2026-01-01T00:00:01Z"}, ["item-a0"]),
        ({"fromStartTime": "2026-01-01T00:00:10Z"}, "b"),
        (
            {"filter": [{"type": "string", "column": "experimentName", "operator": "=",
                         "value": "candidate run"}]},
            "b",
        ),
        (
            {"filter": [{"type": "string", "column": "experimentId", "operator": "starts with",
                         "value": "exp-a"}]},
            "a",
        ),
        (
            {"filter": [{"type": "stringOptions", "column": "experimentItemId",
                         "operator": "none of", "value": ["item-a0", "item-a1", "item-a2"]}]},
            "b",
        ),
        (
            {"filter": [{"type": "null", "column": "datasetId", "operator": "is null"}]},
            "b",
        ),
        # The filter wins over the simple parameter on the same column.
        (
            {"experimentId": EXP_A, "filter": [{"type": "stringOptions", "column": "experimentId",
                                                "operator": "any of", "value": [EXP_B]}]},
            "b",
        ),
        # Different columns combine.
        ({"experimentId": EXP_A, "experimentItemId": "item-b0"}, []),
    ],
)  # fmt: skip
def test_item_filters(project: Project, world: World, params: dict[str, Any], expect: Any) -> None:
    query = {"fromStartTime": FROM, **params}
    if "filter" in query:
        query["filter"] = json.dumps(query["filter"])
    body = get(project, ITEMS, **query)
    if isinstance(expect, str):
        items = {"a": world.a, "b": world.b}
        ids = [i.item_id for key in expect for i in items[key]]
    else:
        ids = expect
    by_start = {i.item_id: i.start for i in world.a + world.b}
    expected = sorted(ids, key=lambda i: -by_start[i])
    assert [d["experimentItemId"] for d in body["data"]] == expected


# -- experiments -------------------------------------------------------------------------------


def test_experiments_list_every_field(project: Project, world: World) -> None:
    body = get(project, EXPERIMENTS, fromStartTime=FROM, fields="core,metadata,scores")
    assert body["meta"].get("cursor") is None
    b, a = body["data"]  # latest activity first
    a_scores, b_scores = a.pop("scores"), b.pop("scores")
    assert a == {
        "id": EXP_A,
        "name": "baseline run",
        "description": "the baseline",
        # From the first observation (the run span starts 0.1 s before the task span) to the
        # last end (the run span of the last item ends 1 s after its task span).
        "startTime": "2025-12-31T23:59:59.900Z",
        "endTime": "2026-01-01T00:00:03.500Z",
        "itemCount": 3,
        "datasetId": "ds-a",
        "metadata": META_A,
    }
    assert b == {
        "id": EXP_B,
        "name": "candidate run",
        "description": "the candidate",
        "startTime": "2026-01-01T00:00:09.900Z",
        "endTime": "2026-01-01T00:00:13.000Z",
        "itemCount": 2,
        "datasetId": None,
        "metadata": {"model": "small"},
    }
    assert [s["id"] for s in a_scores] == list(reversed(world.run_scores))
    assert a_scores[0]["name"] == "pass_rate" and a_scores[0]["value"] == 0.75
    assert a_scores[0]["subject"] == {"kind": "experiment", "id": EXP_A}
    assert b_scores == []


def test_experiments_default_fields_are_core(project: Project, world: World) -> None:
    body = get(project, EXPERIMENTS, fromStartTime=FROM)
    assert [e["id"] for e in body["data"]] == [EXP_B, EXP_A]
    assert all("metadata" not in e and "scores" not in e for e in body["data"])
    one = get(project, EXPERIMENTS, fromStartTime=FROM, fields="scores", scoreLimit=1)
    a = one["data"][1]
    assert [s["id"] for s in a["scores"]] == [world.run_scores[-1]]


def test_experiments_count_items_in_the_window_only(project: Project, world: World) -> None:
    body = get(project, EXPERIMENTS, fromStartTime="2026-01-01T00:00:00.500Z")
    a = {e["id"]: e for e in body["data"]}[EXP_A]
    assert a["itemCount"] == 2
    assert a["startTime"] == "2026-01-01T00:00:00.600Z"  # item 0's evaluator span, in the window
    body = get(project, EXPERIMENTS, fromStartTime=FROM, toStartTime="2026-01-01T00:00:05Z")
    assert [e["id"] for e in body["data"]] == [EXP_A]


def test_experiments_cursor_pages(project: Project, world: World) -> None:
    build(project, suffix="-2")  # two more experiments, same times: id breaks the tie
    everything = [e["id"] for e in get(project, EXPERIMENTS, fromStartTime=FROM)["data"]]
    assert everything == [EXP_B + "-2", EXP_B, EXP_A + "-2", EXP_A]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"fromStartTime": FROM, "limit": 1}
        if cursor:
            params["cursor"] = cursor
        body = get(project, EXPERIMENTS, **params)
        seen += [e["id"] for e in body["data"]]
        cursor = body["meta"].get("cursor")
        if not cursor:
            break
    assert seen == everything


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"id": f"{EXP_A},nope"}, [EXP_A]),
        ({"name": "candidate run,baseline run"}, [EXP_B, EXP_A]),
        ({"datasetId": "ds-a"}, [EXP_A]),
        (
            {"filter": [{"type": "string", "column": "name", "operator": "contains",
                         "value": "CANDIDATE"}]},
            [EXP_B],
        ),
        ({"filter": [{"type": "null", "column": "datasetId", "operator": "is not null"}]},
         [EXP_A]),
        ({"filter": [{"type": "stringOptions", "column": "id", "operator": "none of",
                      "value": [EXP_A]}]}, [EXP_B]),
    ],
)  # fmt: skip
def test_experiment_filters(
    project: Project, world: World, params: dict[str, Any], expect: list[str]
) -> None:
    query = {"fromStartTime": FROM, **params}
    if "filter" in query:
        query["filter"] = json.dumps(query["filter"])
    assert [e["id"] for e in get(project, EXPERIMENTS, **query)["data"]] == expect


# -- isolation, scores, aggregates -------------------------------------------------------------


def test_projects_do_not_see_each_others_experiments(
    project: Project, other_project: Project, world: World
) -> None:
    assert get(other_project, EXPERIMENTS, fromStartTime=FROM)["data"] == []
    assert get(other_project, ITEMS, fromStartTime=FROM)["data"] == []
    # The same experiment id in the other project is another experiment.
    item = Item(
        EXP_A, "theirs", "item-x", os.urandom(16).hex(), os.urandom(8).hex(), T0, T0 + SEC,
        "in", "out", "exp", {},
    )  # fmt: skip
    send_item(other_project, item, "other", {})
    post_score(other_project, datasetRunId=EXP_A, name="theirs", value=1)
    theirs = get(other_project, EXPERIMENTS, fromStartTime=FROM, fields="scores")["data"]
    assert [(e["id"], e["name"], e["itemCount"]) for e in theirs] == [(EXP_A, "theirs", 1)]
    assert [s["name"] for s in theirs[0]["scores"]] == ["theirs"]
    ours = get(project, EXPERIMENTS, fromStartTime=FROM, id=EXP_A, fields="scores")["data"]
    assert ours[0]["itemCount"] == 3
    assert {s["name"] for s in ours[0]["scores"]} == {"avg_accuracy", "pass_rate"}
    items = get(project, ITEMS, fromStartTime=FROM, experimentId=EXP_A, fields="scores")["data"]
    assert item.root_id not in {d["id"] for d in items}


def test_run_scores_are_readable_through_v3_and_v2(project: Project, world: World) -> None:
    r = project.get("/api/public/v3/scores", params={"experimentId": EXP_A, "fields": "subject"})
    assert r.status_code == 200, r.text
    assert_response_matches(r)
    data = r.json()["data"]
    assert [s["id"] for s in data] == list(reversed(world.run_scores))
    assert all(s["subject"] == {"kind": "experiment", "id": EXP_A} for s in data)
    r = project.get("/api/public/v2/scores", params={"datasetRunId": EXP_A})
    assert r.status_code == 200
    assert {s["datasetRunId"] for s in r.json()["data"]} == {EXP_A}
    assert project.get(f"/api/public/v2/scores/{world.run_scores[0]}").json()["value"] == 0.5


def test_score_aggregates_extension(project: Project, world: World) -> None:
    r = project.get(f"{EXPERIMENTS}/{EXP_A}/score-aggregates")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["experimentId"] == EXP_A
    assert body["itemCount"] == 3 and body["errorCount"] == 1
    accuracy, verdict = body["itemScores"]
    assert accuracy == {
        "name": "accuracy",
        "dataType": "NUMERIC",
        "count": 3,
        "itemsScored": 3,
        "average": 0.5,
        "min": 0.0,
        "max": 1.0,
    }
    assert verdict["name"] == "verdict" and verdict["dataType"] == "CATEGORICAL"
    assert verdict["count"] == 3 and verdict["values"] == {"bad": 1, "good": 2}
    assert [(s["name"], s["average"], s["count"]) for s in body["runScores"]] == [
        ("avg_accuracy", 0.5, 1),
        ("pass_rate", 0.75, 1),
    ]
    b = project.get(f"{EXPERIMENTS}/{EXP_B}/score-aggregates").json()
    assert b["itemCount"] == 2 and b["itemScores"] == [] and b["runScores"] == []
    r = project.get(f"{EXPERIMENTS}/nope/score-aggregates")
    assert r.status_code == 404
    assert r.json()["error"] == "LangfuseNotFoundError"


# -- every score of one experiment (tracehouse extension) --------------------------------------

V3_SCORES = "/api/public/v3/scores"  # the page shape the extension returns


def exp_scores(project: Project, experiment_id: str, **params: Any) -> dict[str, Any]:
    r = project.get(f"{EXPERIMENTS}/{experiment_id}/scores", params=params)
    assert r.status_code == 200, r.text
    assert_response_matches(r, path=V3_SCORES)
    return r.json()  # type: ignore[no-any-return]


def walk_exp_scores(project: Project, experiment_id: str, **params: Any) -> tuple[list, int]:
    """Every page; the scores and the number of pages."""
    seen: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        body = exp_scores(
            project, experiment_id, **params, **({"cursor": cursor} if cursor else {})
        )
        seen += body["data"]
        pages += 1
        cursor = body["meta"].get("cursor")
        if not cursor:
            return seen, pages


def newest_first(data: list[dict[str, Any]]) -> bool:
    keys = [(d["timestamp"], d["id"]) for d in data]
    return keys == sorted(keys, reverse=True)


def test_experiment_scores_lists_item_and_run_scores_once(project: Project, world: World) -> None:
    body = exp_scores(project, EXP_A)
    data = body["data"]
    assert body["meta"] == {"limit": 1000}
    item_of = {sid: item for item in world.a for sid in item.score_ids}
    assert sorted(d["id"] for d in data) == sorted([*item_of, *world.run_scores])
    assert newest_first(data)
    for d in data:
        item = item_of.get(d["id"])
        if item is None:  # a run-level score
            assert d["experimentItemId"] is None and d["experimentItemObservationId"] is None
            assert d["subject"] == {"kind": "experiment", "id": EXP_A}
        else:
            assert d["experimentItemId"] == item.item_id
            assert d["experimentItemObservationId"] == item.root_id
    # Shaped as /api/public/v3/scores with fields=details,subject, plus the two item keys.
    accuracy = next(d for d in data if d["id"] == world.a[0].score_ids[0])
    r = project.get(V3_SCORES, params={"id": accuracy["id"], "fields": "details,subject"})
    assert {**r.json()["data"][0], "experimentItemId": "item-a0",
            "experimentItemObservationId": world.a[0].root_id} == accuracy  # fmt: skip
    assert accuracy["subject"]["kind"] == "observation" and accuracy["comment"] == "c0"
    verdict = next(d for d in data if d["id"] == world.a[0].score_ids[1])
    assert verdict["value"] == "bad" and verdict["subject"]["kind"] == "trace"


def test_experiment_scores_belong_to_their_experiment(project: Project, world: World) -> None:
    b = world.b[0]
    theirs = post_score(project, traceId=b.trace_id, name="accuracy", value=1)
    stray = post_score(project, traceId=os.urandom(16).hex(), name="accuracy", value=1)
    ids = [d["id"] for d in exp_scores(project, EXP_A)["data"]]
    assert theirs not in ids and stray not in ids
    assert len(ids) == len(set(ids)) == 6 + 2
    b_data = exp_scores(project, EXP_B)["data"]
    assert [(d["id"], d["experimentItemId"]) for d in b_data] == [(theirs, b.item_id)]
    # An experiment with run-level scores only (no items) is found too.
    run_only = post_score(project, datasetRunId="exp-run-only", name="r", value=1)
    data = exp_scores(project, "exp-run-only")["data"]
    assert [(d["id"], d["experimentItemId"]) for d in data] == [(run_only, None)]


def test_experiment_scores_of_a_trace_with_two_items_are_listed_once(project: Project) -> None:
    trace_id = os.urandom(16).hex()
    items = [
        Item("exp-shared", "shared", f"item-s{i}", trace_id, os.urandom(8).hex(), T0 + i * SEC,
             T0 + i * SEC + SEC, "in", "out", "exp", {})
        for i in range(2)
    ]  # fmt: skip
    for item in items:
        send_item(project, item, "two items in one trace", {})
    score = post_score(project, traceId=trace_id, name="accuracy", value=1)
    first = min(items, key=lambda i: i.root_id)
    data = exp_scores(project, "exp-shared")["data"]
    assert [(d["id"], d["experimentItemId"], d["experimentItemObservationId"]) for d in data] == [
        (score, first.item_id, first.root_id)
    ]


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"name": "accuracy"}, {"accuracy": 3}),
        ({"name": " accuracy , pass_rate "}, {"accuracy": 3, "pass_rate": 1}),
        ({"dataType": "categorical"}, {"verdict": 3}),
        ({"dataType": "NUMERIC"}, {"accuracy": 3, "avg_accuracy": 1, "pass_rate": 1}),
        ({"dataType": "NUMERIC", "name": "verdict"}, {}),
        ({"name": "nope"}, {}),
    ],
)
def test_experiment_scores_filters(
    project: Project, world: World, params: dict[str, Any], expect: dict[str, int]
) -> None:
    data = exp_scores(project, EXP_A, **params)["data"]
    counts: dict[str, int] = {}
    for d in data:
        counts[d["name"]] = counts.get(d["name"], 0) + 1
    assert counts == expect
    assert newest_first(data)


def test_experiment_scores_cursor_pages(project: Project, world: World) -> None:
    everything = exp_scores(project, EXP_A)["data"]
    assert len(everything) == 8
    seen, pages = walk_exp_scores(project, EXP_A, limit=3)
    assert pages == 3
    assert [d["id"] for d in seen] == [d["id"] for d in everything]
    seen, pages = walk_exp_scores(project, EXP_A, limit=1, name="accuracy")
    assert pages == 3 and [d["name"] for d in seen] == ["accuracy"] * 3
    body = exp_scores(project, EXP_A, limit=8)
    assert "cursor" not in body["meta"] and len(body["data"]) == 8


def test_experiment_scores_isolation_and_not_found(
    project: Project, other_project: Project, world: World
) -> None:
    r = other_project.get(f"{EXPERIMENTS}/{EXP_A}/scores")
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "LangfuseNotFoundError"
    assert project.get(f"{EXPERIMENTS}/nope/scores").status_code == 404
    # Filters and cursors that select nothing on an existing experiment: an empty page.
    assert exp_scores(project, EXP_B)["data"] == []
    # The same experiment id in the other project is another experiment.
    theirs = build(other_project)
    ours = {d["id"] for d in exp_scores(project, EXP_A)["data"]}
    other = {d["id"] for d in exp_scores(other_project, EXP_A)["data"]}
    assert other == {*(i for item in theirs.a for i in item.score_ids), *theirs.run_scores}
    assert not ours & other and len(ours) == 8


def test_experiment_scores_bad_parameters(project: Project, world: World) -> None:
    path = f"{EXPERIMENTS}/{EXP_A}/scores"
    for param, value in (
        ("limit", 0),
        ("limit", 10_001),
        ("limit", "many"),
        ("cursor", "not-a-cursor"),
        ("dataType", "NUMERIC,bogus"),
    ):
        r = project.get(path, params={param: value})
        assert r.status_code == 400, r.text
        assert_response_matches(r, path=V3_SCORES)
        assert param in r.json()["message"]
    assert exp_scores(project, EXP_A, limit=10_000)["meta"]["limit"] == 10_000


# -- bad parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EXPERIMENTS, ITEMS])
def test_bad_parameters_name_the_parameter(project: Project, path: str) -> None:
    bad(project, path, "fromStartTime")
    bad(project, path, "fromStartTime", fromStartTime="yesterday")
    bad(project, path, "toStartTime", fromStartTime=FROM, toStartTime="soon")
    bad(project, path, "toStartTime", fromStartTime=FROM, toStartTime=FROM)
    bad(project, path, "fields", fromStartTime=FROM, fields="core,bogus")
    bad(project, path, "limit", fromStartTime=FROM, limit=0)
    bad(project, path, "limit", fromStartTime=FROM, limit=101)
    bad(project, path, "limit", fromStartTime=FROM, limit="many")
    bad(project, path, "scoreLimit", fromStartTime=FROM, scoreLimit=51)
    bad(project, path, "cursor", fromStartTime=FROM, cursor="not-a-cursor")
    bad(project, path, "filter", fromStartTime=FROM, filter="{")
    bad(
        project,
        path,
        "filter[0].column",
        fromStartTime=FROM,
        filter=json.dumps([{"type": "string", "column": "input", "operator": "=", "value": "x"}]),
    )


def test_unknown_item_group_names_allowed_groups(project: Project) -> None:
    message = bad(project, ITEMS, "fields", fromStartTime=FROM, fields="trace")
    assert "itemMetadata" in message
    message = bad(project, EXPERIMENTS, "fields", fromStartTime=FROM, fields="io")
    assert "metadata" in message
