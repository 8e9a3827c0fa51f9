"""GET /api/public/prompt-metrics: per prompt version, the linked generations' figures.

Prompt versions are created through the prompts API, generations linked to them arrive as JSON
ingestion batches (``promptName``/``promptVersion``), scores as ``score-create`` events; every
figure of the reply is checked (costs are binary fractions, so sums and means are exact).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import event, new_id, ts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

URL = "/api/public/prompt-metrics"
PROMPTS = "/api/public/v2/prompts"


def _create(project, name: str, text: str, labels: list[str] | None = None) -> int:
    r = project.post(PROMPTS, json={"name": name, "prompt": text, "labels": labels or []})
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def _generation(
    trace_id: str,
    *,
    start: float,
    end: float | None,
    prompt: tuple[str, int] | None,
    usage: tuple[int, int] = (0, 0),
    cost: tuple[float, float] | None = None,
    obs_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": obs_id or new_id(),
        "traceId": trace_id,
        "name": "llm",
        "model": "tracehouse-test-unpriced-model",
        "startTime": ts(start),
        "usageDetails": {"input": usage[0], "output": usage[1]},
    }
    if end is not None:
        body["endTime"] = ts(end)
    if prompt is not None:
        body["promptName"], body["promptVersion"] = prompt
    if cost is not None:
        body["costDetails"] = {"input": cost[0], "output": cost[1]}
    return event("generation-create", body)


def _score(
    trace_id: str,
    name: str,
    value: Any,
    *,
    observation_id: str | None = None,
    data_type: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": new_id(), "traceId": trace_id, "name": name, "value": value}
    if observation_id is not None:
        body["observationId"] = observation_id
    if data_type is not None:
        body["dataType"] = data_type
    return event("score-create", body)


def _ingest(project, *events: dict[str, Any]) -> None:
    r = project.ingest(*events)
    assert r.status_code == 207, r.text
    assert r.json()["errors"] == [], r.json()
    assert len(r.json()["successes"]) == len(events)


def _metrics(project, name: str) -> list[dict[str, Any]]:
    r = project.get(URL, params={"name": name})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def _at(seconds: float) -> str:
    return ts(seconds)


def test_every_figure_per_version(project):
    name = "support/answer"
    assert _create(project, name, "v1 {{q}}") == 1
    assert _create(project, name, "v2 {{q}}", ["production"]) == 2
    assert _create(project, name, "v3 {{q}}") == 3  # never used
    other = "support/other"
    _create(project, other, "other")

    t1, t2, t3 = new_id(), new_id(), new_id()
    g1, g2, g3, g4, g5, unlinked = (new_id() for _ in range(6))
    _ingest(
        project,
        event("trace-create", {"id": t1, "name": "a"}),
        event("trace-create", {"id": t2, "name": "b"}),
        event("trace-create", {"id": t3, "name": "c"}),
        # version 1: two generations in trace 1 (2 s and 4 s), one in trace 2 (3 s, no cost)
        _generation(
            t1, start=0, end=2, prompt=(name, 1), usage=(10, 4), cost=(0.5, 0.25), obs_id=g1
        ),
        _generation(
            t1, start=10, end=14, prompt=(name, 1), usage=(20, 6), cost=(0.25, 0.125), obs_id=g2
        ),
        _generation(t2, start=5, end=8, prompt=(name, 1), usage=(30, 8), obs_id=g3),
        # version 2: one finished generation and one still running (no end time)
        _generation(
            t2, start=20, end=20.5, prompt=(name, 2), usage=(7, 3), cost=(1, 0.5), obs_id=g4
        ),
        _generation(t3, start=30, end=None, prompt=(name, 2), usage=(1, 1), obs_id=g5),
        # not linked, or linked to another prompt: never counted
        _generation(
            t1, start=1, end=100, prompt=None, usage=(1000, 1000), cost=(8, 8), obs_id=unlinked
        ),
        _generation(t3, start=1, end=100, prompt=(other, 1), usage=(500, 500), cost=(4, 4)),
    )
    _ingest(
        project,
        # observation scores
        _score(t1, "quality", 0.5, observation_id=g1),
        _score(t1, "quality", 1.0, observation_id=g2),
        _score(t2, "quality", 0.25, observation_id=g3),
        _score(t2, "quality", 0.75, observation_id=g4),
        # a trace score of trace 1: counted once for version 1 (two generations share it)
        _score(t1, "helpful", 1, data_type="BOOLEAN"),
        # trace 2 holds generations of versions 1 and 2: its trace score counts for both
        _score(t2, "helpful", 0, data_type="BOOLEAN"),
        _score(t2, "overall", 0.5),
        _score(t3, "quality", 0.0, observation_id=g5),
        # a score of another observation of trace 1 (not linked): not counted
        _score(t1, "quality", 0.0, observation_id=unlinked),
        # categorical scores are not averaged
        _score(t1, "tone", "friendly", observation_id=g1, data_type="CATEGORICAL"),
    )

    data = _metrics(project, name)
    assert [d["promptVersion"] for d in data] == [3, 2, 1]
    v3, v2, v1 = data
    assert v1 == {
        "promptName": name,
        "promptVersion": 1,
        "observationCount": 3,
        "firstUsedAt": _at(0),
        "lastUsedAt": _at(10),
        "avgLatencySeconds": 3.0,  # (2 + 4 + 3) / 3
        "totalInputUsage": 60,
        "totalOutputUsage": 18,
        "avgInputUsage": 20,
        "avgOutputUsage": 6,
        "totalCost": 1.125,
        "avgCost": 0.5625,  # over the two priced generations
        "scores": [
            {"name": "helpful", "average": 0.5, "count": 2},
            {"name": "overall", "average": 0.5, "count": 1},
            {"name": "quality", "average": pytest.approx(1.75 / 3), "count": 3},
        ],
    }
    assert v2 == {
        "promptName": name,
        "promptVersion": 2,
        "observationCount": 2,
        "firstUsedAt": _at(20),
        "lastUsedAt": _at(30),
        "avgLatencySeconds": 0.5,  # the running generation has no latency yet
        "totalInputUsage": 8,
        "totalOutputUsage": 4,
        "avgInputUsage": 4,
        "avgOutputUsage": 2,
        "totalCost": 1.5,
        "avgCost": 1.5,
        "scores": [
            {"name": "helpful", "average": 0.0, "count": 1},
            {"name": "overall", "average": 0.5, "count": 1},
            {"name": "quality", "average": 0.375, "count": 2},
        ],
    }
    assert v3 == {
        "promptName": name,
        "promptVersion": 3,
        "observationCount": 0,
        "firstUsedAt": None,
        "lastUsedAt": None,
        "avgLatencySeconds": None,
        "totalInputUsage": 0,
        "totalOutputUsage": 0,
        "avgInputUsage": None,
        "avgOutputUsage": None,
        "totalCost": None,
        "avgCost": None,
        "scores": [],
    }

    # the other prompt only sees its own generation (and the quality score of trace 3 is on
    # a generation of `name`, not of `other`)
    (o1,) = _metrics(project, other)
    assert (o1["promptVersion"], o1["observationCount"]) == (1, 1)
    assert (o1["totalInputUsage"], o1["totalCost"], o1["avgLatencySeconds"]) == (500, 8, 99)
    assert o1["scores"] == []


def test_a_version_used_but_deleted_or_never_created_is_listed(project):
    """Observations may name versions the prompt store no longer (or never) had."""
    name = "traced-only"
    tid = new_id()
    _ingest(
        project,
        event("trace-create", {"id": tid}),
        _generation(tid, start=0, end=1, prompt=(name, 4), usage=(2, 1)),
        _generation(tid, start=2, end=4, prompt=(name, 7), usage=(4, 3)),
    )
    data = _metrics(project, name)
    assert [(d["promptVersion"], d["observationCount"]) for d in data] == [(7, 1), (4, 1)]
    assert [d["avgLatencySeconds"] for d in data] == [2.0, 1.0]

    _create(project, "deleted-later", "x")
    _create(project, "deleted-later", "y")
    _ingest(
        project,
        _generation(tid, start=0, end=1, prompt=("deleted-later", 1), usage=(1, 1)),
    )
    assert project.delete(f"{PROMPTS}/deleted-later", params={"version": 1}).status_code == 204
    data = _metrics(project, "deleted-later")
    assert [(d["promptVersion"], d["observationCount"]) for d in data] == [(2, 0), (1, 1)]


def test_metrics_are_per_project(project, other_project):
    name = "shared-name"
    _create(project, name, "mine")
    tid = new_id()
    _ingest(
        other_project,
        event("trace-create", {"id": tid}),
        _generation(tid, start=0, end=1, prompt=(name, 1), usage=(5, 5), cost=(1, 1)),
        _score(tid, "overall", 1.0),
    )
    (mine,) = _metrics(project, name)
    assert (mine["observationCount"], mine["totalCost"], mine["scores"]) == (0, None, [])
    (theirs,) = _metrics(other_project, name)
    assert (theirs["observationCount"], theirs["totalCost"]) == (1, 2)
    assert theirs["scores"] == [{"name": "overall", "average": 1.0, "count": 1}]


def test_name_is_required_and_unknown_names_are_404(project):
    r = project.get(URL)
    assert r.status_code == 400
    assert r.json()["message"].startswith("name:")
    r = project.get(URL, params={"name": "nothing-here"})
    assert r.status_code == 404
    assert "nothing-here" in r.json()["message"]
    r = project.get(URL, params={"name": "a//b"})
    assert r.status_code == 400
    assert r.json()["message"].startswith("name:")


def test_needs_the_secret_key(project, app_client):
    assert app_client.get(URL, params={"name": "x"}).status_code == 401
    bearer = {"Authorization": f"Bearer {project.public_key}"}
    r = app_client.get(URL, params={"name": "x"}, headers=bearer)
    assert r.status_code == 403
