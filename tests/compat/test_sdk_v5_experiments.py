"""Experiments and batched evaluation through the newest Langfuse Python SDK (5.x), unchanged,
against a real `tracehouse serve` (the compat harness's server subprocess).

The SDK client lives in this process, built only from its public constructor arguments (server
URL, keys, a private OpenTelemetry ``TracerProvider``). ``run_experiment`` sends each item as
spans carrying ``langfuse.experiment.*`` attributes over OTLP and its scores to
``/api/public/scores``; ``run_batched_evaluation`` reads observations through
``/api/public/v2/observations`` and writes scores. Everything is read back through the SDK's own
API client (``api.experiments.list`` / ``list_items``, ``api.scores.get_many``) and checked
against Langfuse's OpenAPI contract through plain HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

import pytest
from langfuse import Evaluation, EvaluatorInputs, Langfuse
from langfuse.api import ExperimentItem

from tests.compat.conftest import Server, sdk_client

pytestmark = pytest.mark.compat

RUN = uuid.uuid4().hex[:10]
ALL_ITEM_FIELDS = "core,dataset,io,metadata,itemMetadata,experimentMetadata,scores"
START = datetime.now(UTC) - timedelta(minutes=5)


@pytest.fixture(scope="module")
def lf(server: Server) -> Iterator[Langfuse]:
    with sdk_client(server, None) as client:
        yield client


def all_items(lf: Langfuse, experiment_id: str, *, limit: int = 100) -> list[ExperimentItem]:
    """Every item of an experiment, following the cursor."""
    items: list[ExperimentItem] = []
    cursor = None
    while True:
        page = lf.api.experiments.list_items(
            from_start_time=START,
            experiment_id=experiment_id,
            fields=ALL_ITEM_FIELDS,
            limit=limit,
            cursor=cursor,
        )
        items += page.data
        cursor = page.meta.cursor
        if not cursor:
            return items


def contract_checked(server: Server, path: str, **params: Any) -> dict[str, Any]:
    """The same read through plain HTTP, validated against the OpenAPI contract."""
    body: dict[str, Any] = server.get(path, params=params).json()
    return body


# -- evaluators ----------------------------------------------------------------------------------


def exact_match(*, input: Any, output: Any, expected_output: Any, **_: Any) -> Evaluation:
    return Evaluation(name="exact", value=1.0 if output == expected_output else 0.0, comment="eq")


def length_and_label(*, output: Any, **_: Any) -> list[Evaluation]:
    return [
        Evaluation(name="length", value=float(len(str(output)))),
        Evaluation(
            name="label", value="long" if len(str(output)) > 2 else "short", data_type="CATEGORICAL"
        ),
    ]


def broken_evaluator(**_: Any) -> Evaluation:
    raise RuntimeError("evaluator exploded")


def average_exact(*, item_results: Any, **_: Any) -> Evaluation:
    values = [e.value for r in item_results for e in r.evaluations if e.name == "exact"]
    return Evaluation(name="avg_exact", value=sum(values) / len(values), comment="run level")


# -- run_experiment on local data ---------------------------------------------------------------


def test_run_experiment_sync_task_evaluators_and_a_failing_item(
    lf: Langfuse, server: Server
) -> None:
    data = [
        {"input": {"q": i}, "expected_output": f"a{i}", "metadata": {"idx": i, "run": RUN}}
        for i in range(5)
    ]

    def task(*, item: Any, **_: Any) -> str:
        q = item["input"]["q"]
        if q == 3:
            raise ValueError("item three is broken")
        return f"a{q}" if q % 2 == 0 else "wrong"

    run_name = f"sync-{RUN}"
    result = lf.run_experiment(
        name="sync experiment",
        run_name=run_name,
        description="sync task on local data",
        data=data,
        task=task,
        evaluators=[exact_match, length_and_label, broken_evaluator],
        run_evaluators=[average_exact],
        max_concurrency=2,
        metadata={"model": "m1", "run": RUN},
    )
    exp_id = result.experiment_id
    assert len(result.item_results) == 4  # the failing item is left out of the results
    assert [e.name for e in result.run_evaluations] == ["avg_exact"]

    items = all_items(lf, exp_id, limit=2)  # three pages
    assert len(items) == 5
    assert [i.start_time for i in items] == sorted((i.start_time for i in items), reverse=True)
    by_q = {i.input["q"]: i for i in items}
    assert sorted(by_q) == [0, 1, 2, 3, 4]
    traces = {r.item["input"]["q"]: r.trace_id for r in result.item_results}
    for q, item in by_q.items():
        assert item.experiment_id == exp_id
        assert item.experiment_name == run_name  # the runner sends the run name as the name
        assert item.experiment_description == "sync task on local data"
        assert item.experiment_metadata == {"model": "m1", "run": RUN}
        assert item.experiment_item_metadata == {"idx": q, "run": RUN}
        assert item.experiment_dataset_id is None and item.experiment_item_version is None
        assert item.environment == "sdk-experiment"
        assert item.expected_output == f"a{q}"
        # Item ids of local data: the first 16 hex digits of the SHA-256 of the input.
        assert len(item.experiment_item_id) == 16
        assert item.metadata is not None and item.metadata["idx"] == q
        if q == 3:
            assert item.level == "ERROR"
            assert item.output == "Error: item three is broken"
            assert item.scores == []
            continue
        assert item.trace_id == traces[q]
        assert item.level == "DEFAULT"
        assert item.output == (f"a{q}" if q % 2 == 0 else "wrong")
        scores = {s.name: s for s in item.scores or []}
        assert set(scores) == {"exact", "length", "label"}
        assert scores["exact"].value == (1.0 if q % 2 == 0 else 0.0)
        assert scores["exact"].comment == "eq"
        assert scores["label"].value in ("long", "short")
        subject = scores["exact"].subject
        assert subject is not None and subject.id == item.id  # on the item's root observation
    assert len({i.experiment_item_id for i in items}) == 5

    (experiment,) = lf.api.experiments.list(
        from_start_time=START, id=exp_id, fields="core,metadata,scores"
    ).data
    assert experiment.name == run_name
    assert experiment.description == "sync task on local data"
    assert experiment.item_count == 5
    assert experiment.dataset_id is None
    assert experiment.metadata == {"model": "m1", "run": RUN}
    assert experiment.start_time <= min(i.start_time for i in items)
    assert experiment.end_time >= max(i.end_time for i in items if i.end_time)
    (run_score,) = experiment.scores or []
    assert run_score.name == "avg_exact" and run_score.value == pytest.approx(0.75)
    assert run_score.comment == "run level"

    v3 = lf.api.scores.get_many(experiment_id=exp_id, fields="details,subject")
    assert [(s.name, s.value) for s in v3.data] == [("avg_exact", pytest.approx(0.75))]

    # The same reads through plain HTTP match the OpenAPI contract.
    contract_checked(
        server,
        "/api/public/experiment-items",
        fromStartTime=START.isoformat(),
        experimentId=exp_id,
        fields=ALL_ITEM_FIELDS,
    )
    contract_checked(
        server, "/api/public/experiments", fromStartTime=START.isoformat(), fields="scores"
    )
    aggregates = server.http.get(f"/api/public/experiments/{exp_id}/score-aggregates").json()
    exact = {a["name"]: a for a in aggregates["itemScores"]}["exact"]
    assert exact["count"] == 4 and exact["average"] == pytest.approx(0.75)
    assert aggregates["itemCount"] == 5 and aggregates["errorCount"] == 1


def test_run_experiment_async_task(lf: Langfuse) -> None:
    async def task(*, item: Any, **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"echo": item["input"], "upper": item["input"].upper()}

    async def async_evaluator(*, output: Any, expected_output: Any, **_: Any) -> Evaluation:
        await asyncio.sleep(0)
        ok = output["upper"] == expected_output
        return Evaluation(name="upper_ok", value=1.0 if ok else 0.0, data_type="BOOLEAN")

    data = [{"input": f"word{i}", "expected_output": f"WORD{i}"} for i in range(6)]
    result = lf.run_experiment(
        name="async experiment",
        data=data,
        task=task,
        evaluators=[async_evaluator],
        max_concurrency=3,
    )
    assert len(result.item_results) == 6
    items = all_items(lf, result.experiment_id)
    assert len(items) == 6
    for item in items:
        assert item.output == {"echo": item.input, "upper": item.input.upper()}
        assert item.expected_output == item.input.upper()
        assert item.experiment_name == result.run_name
        (score,) = item.scores or []
        assert score.name == "upper_ok" and score.value is True
        assert score.data_type == "BOOLEAN"
    (experiment,) = lf.api.experiments.list(
        from_start_time=START, id=result.experiment_id, fields="scores"
    ).data
    assert experiment.item_count == 6 and experiment.scores == []
    names = lf.api.experiments.list(from_start_time=START, name=result.run_name).data
    assert [e.id for e in names] == [result.experiment_id]


# -- run_batched_evaluation ---------------------------------------------------------------------


def test_run_batched_evaluation_with_filter_errors_and_resume(lf: Langfuse) -> None:
    name = f"batch-target-{RUN}"
    ids: dict[str, tuple[str, int]] = {}
    for i in range(5):
        with lf.start_as_current_observation(
            name=name, input={"n": i}, output="x" * (i + 1), metadata={"i": i}
        ) as span:
            ids[span.id] = (span.trace_id, i + 1)
    with lf.start_as_current_observation(name=f"other-{RUN}", input="not me"):
        pass
    lf.flush()

    def mapper(*, item: Any) -> EvaluatorInputs:
        return EvaluatorInputs(
            input=json.loads(item.input),
            output=item.output,
            expected_output=None,
            metadata={"trace_id": item.trace_id},
        )

    def output_length(*, output: Any, **_: Any) -> Evaluation:
        # v2 observations carry input/output as raw text: a string output comes as sent.
        return Evaluation(name="output_length", value=float(len(output)))

    batch_filter = json.dumps(
        [
            {"type": "string", "column": "name", "operator": "=", "value": name},
            {"type": "datetime", "column": "startTime", "operator": ">=",
             "value": START.isoformat()},
        ]
    )  # fmt: skip
    first = lf.run_batched_evaluation(
        mapper=mapper,
        filter=batch_filter,
        evaluators=[output_length, broken_evaluator],
        fetch_batch_size=2,
        max_items=3,
        metadata={"batch": RUN},
        _add_observation_scores_to_trace=True,
    )
    assert first.completed
    assert first.total_items_fetched == 3 and first.total_items_processed == 3
    assert first.total_scores_created == 6  # one on the observation, one on its trace
    assert first.total_evaluations_failed == 3  # the broken evaluator, once per item
    assert first.has_more_items and first.resume_token is not None
    stats = {s.name: s for s in first.evaluator_stats}
    assert stats["broken_evaluator"].failed_runs == 3
    assert stats["output_length"].successful_runs == 3

    rest = lf.run_batched_evaluation(
        mapper=mapper,
        evaluators=[output_length, broken_evaluator],
        fetch_batch_size=2,
        resume_from=first.resume_token,
        metadata={"batch": RUN},
        _add_observation_scores_to_trace=True,
    )
    assert rest.completed and not rest.has_more_items
    assert rest.total_items_fetched == 2 and rest.total_items_processed == 2
    done = set(first.item_evaluations) | set(rest.item_evaluations)
    assert done == set(ids)  # every target observation once, nothing else

    lf.flush()
    for obs_id, (trace_id, length) in ids.items():
        scores = lf.api.scores.get_many(trace_id=trace_id, fields="details,subject").data
        assert len(scores) == 2, scores
        kinds = sorted(s.subject.kind for s in scores if s.subject)
        assert kinds == ["observation", "trace"]
        for s in scores:
            assert s.name == "output_length"
            assert s.metadata == {"batch": RUN}
        on_obs = lf.api.scores.get_many(trace_id=trace_id, observation_id=obs_id).data
        (score,) = on_obs
        assert score.value == float(length)


# -- run_experiment on a Langfuse dataset -------------------------------------------------------


def test_dataset_run_experiment(lf: Langfuse, server: Server) -> None:
    dataset_name = f"sdk5-exp-{RUN}"
    dataset = lf.create_dataset(name=dataset_name, description="exp data")
    created = [
        lf.create_dataset_item(
            dataset_name=dataset_name,
            input={"city": city},
            expected_output=capital,
            metadata={"continent": "europe"},
        )
        for city, capital in (("france", "paris"), ("italy", "rome"), ("spain", "madrid"))
    ]
    capitals = {"france": "paris", "italy": "rome", "spain": "lisbon"}
    ds = lf.get_dataset(dataset_name)
    assert len(ds.items) == 3

    def task(*, item: Any, **_: Any) -> str:
        return capitals[item.input["city"]]

    run_name = f"capitals-{RUN}"
    result = ds.run_experiment(
        name="capitals", run_name=run_name, task=task, evaluators=[exact_match]
    )
    # The experiment id of a dataset run is derived as Langfuse does (stable per run name).
    payload = json.dumps(
        ["langfuse-experiment-v1", server.project_id, dataset.id, run_name], separators=(",", ":")
    )
    assert result.experiment_id == sha256(payload.encode()).hexdigest()[:16]

    items = all_items(lf, result.experiment_id)
    assert len(items) == 3
    assert {i.experiment_item_id for i in items} == {c.id for c in created}
    for item in items:
        assert item.experiment_dataset_id == dataset.id
        assert (
            item.expected_output
            == {"france": "paris", "italy": "rome", "spain": "madrid"}[item.input["city"]]
        )
        assert item.experiment_item_metadata == {"continent": "europe"}
        (score,) = item.scores or []
        assert score.value == (0.0 if item.input["city"] == "spain" else 1.0)
    (experiment,) = lf.api.experiments.list(from_start_time=START, dataset_id=dataset.id).data
    assert experiment.id == result.experiment_id
    assert experiment.dataset_id == dataset.id and experiment.item_count == 3

    # The same run name again on the same dataset joins the same experiment.
    again = ds.run_experiment(name="capitals", run_name=run_name, task=task)
    assert again.experiment_id == result.experiment_id
    (experiment,) = lf.api.experiments.list(from_start_time=START, dataset_id=dataset.id).data
    assert experiment.item_count == 6
