"""Trace read API: list filters, JSON `filter`, order, pages, field groups, one trace, deletes."""

from __future__ import annotations

import json

import pytest

from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts


def get(project, url, **params):
    r = project.get(url, params=params)
    assert_response_matches(r)
    return r


@pytest.fixture
def three_traces(project):
    ids = [new_id() for _ in range(3)]
    project.ingest(
        event(
            "trace-create",
            {
                "id": ids[0],
                "name": "chat",
                "userId": "alice",
                "sessionId": "s1",
                "tags": ["prod", "a"],
                "release": "r1",
                "version": "v1",
                "environment": "production",
                "metadata": {"tier": "gold", "n": 5},
                "timestamp": ts(0),
            },
        ),
        event(
            "trace-create",
            {
                "id": ids[1],
                "name": "chat",
                "userId": "bob",
                "tags": ["prod"],
                "release": "r2",
                "metadata": {"tier": "free", "n": 1},
                "timestamp": ts(10),
            },
        ),
        event(
            "trace-create",
            {
                "id": ids[2],
                "name": "search",
                "userId": "alice",
                "tags": ["dev"],
                "timestamp": ts(20),
                "environment": "staging",
            },
        ),
        event(
            "generation-create",
            {
                "id": new_id(),
                "traceId": ids[0],
                "startTime": ts(0),
                "endTime": ts(2.5),
                "usage": {"input": 100, "output": 50},
                "costDetails": {"input": 0.01, "output": 0.02},
                "level": "ERROR",
            },
        ),
        event(
            "span-create", {"id": new_id(), "traceId": ids[0], "startTime": ts(1), "endTime": ts(4)}
        ),
        event("score-create", {"id": new_id(), "traceId": ids[0], "name": "quality", "value": 0.9}),
        event("score-create", {"id": new_id(), "traceId": ids[1], "name": "quality", "value": 0.2}),
        event(
            "score-create", {"id": new_id(), "traceId": ids[1], "name": "label", "value": "good"}
        ),
    )
    return ids


def names(r):
    return [t["id"] for t in r.json()["data"]]


def test_list_is_newest_first_with_meta(project, three_traces):
    r = get(project, "/api/public/traces")
    assert names(r) == three_traces[::-1]
    assert r.json()["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}


def test_pagination(project, three_traces):
    r = get(project, "/api/public/traces", page=2, limit=2)
    assert names(r) == [three_traces[0]]
    assert r.json()["meta"] == {"page": 2, "limit": 2, "totalItems": 3, "totalPages": 2}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"userId": "alice"}, [2, 0]),
        ({"name": "chat"}, [1, 0]),
        ({"sessionId": "s1"}, [0]),
        ({"release": "r2"}, [1]),
        ({"version": "v1"}, [0]),
        ({"tags": ["prod"]}, [1, 0]),
        ({"tags": ["prod", "a"]}, [0]),
        ({"environment": ["production", "staging"]}, [2, 0]),
        ({"fromTimestamp": ts(10)}, [2, 1]),
        ({"toTimestamp": ts(10)}, [0]),
        ({"userId": "alice", "name": "search"}, [2]),
    ],
)
def test_simple_filters(project, three_traces, params, expected):
    r = get(project, "/api/public/traces", **params)
    assert names(r) == [three_traces[i] for i in expected]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (
            [
                {
                    "type": "stringObject",
                    "column": "metadata",
                    "key": "tier",
                    "operator": "=",
                    "value": "gold",
                }
            ],
            [0],
        ),
        (
            [
                {
                    "type": "numberObject",
                    "column": "metadata",
                    "key": "n",
                    "operator": ">",
                    "value": 2,
                }
            ],
            [0],
        ),
        (
            [{"type": "arrayOptions", "column": "tags", "operator": "none of", "value": ["prod"]}],
            [2],
        ),
        ([{"type": "number", "column": "totalCost", "operator": ">=", "value": 0.03}], [0]),
        ([{"type": "number", "column": "latency", "operator": ">", "value": 3.5}], [0]),
        ([{"type": "number", "column": "totalTokens", "operator": "=", "value": 150}], [0]),
        ([{"type": "string", "column": "level", "operator": "=", "value": "ERROR"}], [0]),
        ([{"type": "number", "column": "errorCount", "operator": ">=", "value": 1}], [0]),
        (
            [
                {
                    "type": "numberObject",
                    "column": "scores_avg",
                    "key": "quality",
                    "operator": "<",
                    "value": 0.5,
                }
            ],
            [1],
        ),
        (
            [
                {
                    "type": "categoryOptions",
                    "column": "score_categories",
                    "key": "label",
                    "operator": "any of",
                    "value": ["good"],
                }
            ],
            [1],
        ),
        (
            [
                {"type": "string", "column": "name", "operator": "starts with", "value": "CH"},
                {"type": "datetime", "column": "timestamp", "operator": ">", "value": ts(5)},
            ],
            [1],
        ),
    ],
)
def test_json_filter_conditions(project, three_traces, conditions, expected):
    r = get(project, "/api/public/traces", filter=json.dumps(conditions))
    assert names(r) == [three_traces[i] for i in expected]


def test_json_filter_takes_precedence_over_simple_parameters(project, three_traces):
    cond = [{"type": "string", "column": "userId", "operator": "=", "value": "bob"}]
    r = get(project, "/api/public/traces", userId="alice", filter=json.dumps(cond))
    assert names(r) == [three_traces[1]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"orderBy": "colour.asc"}, "orderBy"),
        ({"orderBy": "timestamp.sideways"}, "orderBy"),
        ({"page": 0}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"fromTimestamp": "yesterday"}, "fromTimestamp"),
        ({"fields": "core,everything"}, "fields"),
        ({"filter": "not json"}, "filter"),
        (
            {
                "filter": json.dumps(
                    [{"type": "string", "column": "nope", "operator": "=", "value": "x"}]
                )
            },
            "column",
        ),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(project, params, field):
    r = get(project, "/api/public/traces", **params)
    assert r.status_code == 400
    assert field in r.json()["message"]


def test_order_by(project, three_traces):
    r = get(project, "/api/public/traces", orderBy="timestamp.asc")
    assert names(r) == three_traces
    r = get(project, "/api/public/traces", orderBy="userId.desc")
    assert [t["userId"] for t in r.json()["data"]] == ["bob", "alice", "alice"]


def test_list_items_carry_observation_and_score_ids_latency_and_cost(project, three_traces):
    r = get(project, "/api/public/traces", orderBy="timestamp.asc")
    first = r.json()["data"][0]
    assert len(first["observations"]) == 2
    assert len(first["scores"]) == 1
    assert first["latency"] == pytest.approx(4.0)
    assert first["totalCost"] == pytest.approx(0.03)
    assert first["htmlPath"] == f"/project/{project.id}/traces/{three_traces[0]}"


def test_field_groups_leave_out_what_was_not_asked_for(project, three_traces):
    r = get(project, "/api/public/traces", fields="core")
    item = r.json()["data"][-1]
    assert "input" not in item and "metadata" not in item
    assert item["observations"] == [] and item["scores"] == []
    assert item["latency"] == -1 and item["totalCost"] == -1
    r = get(project, f"/api/public/traces/{three_traces[0]}", fields="core,io")
    assert r.json()["observations"] == [] and r.json()["metadata"] == {"tier": "gold", "n": 5}


def test_get_one_trace_with_observations_and_scores(project, three_traces):
    r = get(project, f"/api/public/traces/{three_traces[0]}")
    body = r.json()
    assert body["name"] == "chat"
    assert [o["type"] for o in body["observations"]] == ["GENERATION", "SPAN"]
    assert body["observations"][0]["usageDetails"] == {"input": 100, "output": 50, "total": 150}
    assert body["scores"][0]["name"] == "quality" and body["scores"][0]["value"] == 0.9
    assert body["latency"] == pytest.approx(4.0)
    assert body["totalCost"] == pytest.approx(0.03)


def test_unknown_trace_is_404(project):
    r = get(project, "/api/public/traces/does-not-exist")
    assert r.status_code == 404
    assert r.json() == {"message": "Trace not found", "error": "LangfuseNotFoundError"}


def test_delete_one_trace_removes_its_observations_and_scores(project, three_traces):
    r = project.delete(f"/api/public/traces/{three_traces[0]}")
    assert_response_matches(r)
    assert r.status_code == 200
    assert get(project, f"/api/public/traces/{three_traces[0]}").status_code == 404
    assert get(project, "/api/public/traces").json()["meta"]["totalItems"] == 2
    assert project.delete(f"/api/public/traces/{three_traces[0]}").status_code == 404


def test_bulk_delete(project, three_traces, other_project):
    other_project.ingest(event("trace-create", {"id": three_traces[0], "name": "not yours"}))
    r = project.delete("/api/public/traces", json={"traceIds": three_traces[:2]})
    assert_response_matches(r)
    assert r.status_code == 200
    assert names(get(project, "/api/public/traces")) == [three_traces[2]]
    assert get(other_project, f"/api/public/traces/{three_traces[0]}").status_code == 200


def test_bulk_delete_needs_trace_ids(project):
    r = project.delete("/api/public/traces", json={"ids": ["x"]})
    assert r.status_code == 400
    assert "traceIds" in r.json()["message"]
