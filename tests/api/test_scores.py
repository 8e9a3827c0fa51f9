"""Scores: POST /api/public/scores, GET /api/public/v2/scores[/{id}], GET /api/public/v3/scores,
DELETE /api/public/scores/{id}. Every response is checked against the OpenAPI contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Project
from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts
from tracehouse.app import create_app
from tracehouse.auth.limits import PublicKeyLimiter
from tracehouse.config import Settings
from tracehouse.domain.score_configs import new_config
from tracehouse.store import score_configs as config_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- helpers -----------------------------------------------------------------------------------


def _checked(response: httpx.Response) -> httpx.Response:
    assert_response_matches(response)
    return response


def _post(project, body: Any) -> httpx.Response:
    return _checked(project.post("/api/public/scores", json=body))


def _create(project, **body: Any) -> str:
    r = _post(project, body)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _one(project, score_id: str) -> dict[str, Any]:
    r = _checked(project.get(f"/api/public/v2/scores/{score_id}"))
    assert r.status_code == 200, r.text
    return r.json()


def _list(project, **params: Any) -> dict[str, Any]:
    r = _checked(project.get("/api/public/v2/scores", params=params))
    assert r.status_code == 200, r.text
    return r.json()


def _list_v3(project, **params: Any) -> dict[str, Any]:
    r = _checked(project.get("/api/public/v3/scores", params=params))
    assert r.status_code == 200, r.text
    return r.json()


def _ingest(project, *events: dict[str, Any]) -> None:
    r = project.ingest(*events)
    assert r.status_code == 207, r.text
    assert r.json()["errors"] == [], r.text


def _score(score_id: str, at: float, **body: Any) -> dict[str, Any]:
    return event("score-create", {"id": score_id, **body}, at=at)


def _config(project, name: str, data_type: str, **body: Any) -> str:
    """A new score config of the project; its id."""
    r = _checked(
        project.post(
            "/api/public/score-configs", json={"name": name, "dataType": data_type, **body}
        )
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _with_configs(params: dict[str, Any], configs: dict[str, str]) -> dict[str, Any]:
    """``params`` with the placeholder config ids (``cfg-1``) replaced by the real ones."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str):
            for placeholder, real in configs.items():
                value = value.replace(placeholder, real)
        out[key] = value
    return out


def _bad_request(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert field in response.json()["message"], response.text


# (dataType, value sent, expected `value`, expected `stringValue` or absent)
DATA_TYPES = [
    ("NUMERIC", 0.75, 0.75, None),
    ("CATEGORICAL", "good", 0, "good"),
    ("BOOLEAN", 1, 1, "True"),
    ("BOOLEAN", 0, 0, "False"),
    ("TEXT", "a free-text judgement", None, "a free-text judgement"),
    ("CORRECTION", "the corrected answer", 0, "the corrected answer"),
]


# -- create and read back ----------------------------------------------------------------------


@pytest.mark.parametrize(("data_type", "sent", "value", "string_value"), DATA_TYPES)
def test_each_data_type_posted_reads_back_with_its_value(
    project, data_type, sent, value, string_value
):
    trace_id = new_id()
    score_id = _create(project, traceId=trace_id, name="judge", value=sent, dataType=data_type)
    score = _one(project, score_id)
    assert score["dataType"] == data_type
    assert score["value"] == value
    assert score.get("stringValue") == string_value
    assert score["traceId"] == trace_id
    assert score["source"] == "API"
    assert score["environment"] == "default"


@pytest.mark.parametrize(("data_type", "sent", "value", "string_value"), DATA_TYPES)
def test_each_data_type_ingested_reads_back_with_its_value(
    project, data_type, sent, value, string_value
):
    score_id, trace_id = new_id(), new_id()
    _ingest(
        project,
        _score(score_id, 0, traceId=trace_id, name="judge", value=sent, dataType=data_type),
    )
    score = _one(project, score_id)
    assert score["dataType"] == data_type
    assert score["value"] == value
    assert score.get("stringValue") == string_value


def test_data_type_is_inferred_from_the_value(project):
    number = _create(project, traceId=new_id(), name="n", value=3)
    text = _create(project, traceId=new_id(), name="c", value="blue")
    assert _one(project, number)["dataType"] == "NUMERIC"
    assert (_one(project, text)["dataType"], _one(project, text)["stringValue"]) == (
        "CATEGORICAL",
        "blue",
    )


def test_post_without_id_answers_a_new_id(project):
    first = _create(project, traceId=new_id(), name="q", value=1)
    second = _create(project, traceId=new_id(), name="q", value=1, id="")
    assert first and second and first != second
    assert _one(project, first)["id"] == first


def test_post_keeps_every_field_sent(project):
    trace_id, obs_id = new_id(), new_id()
    config_id = _config(project, "helpfulness", "NUMERIC", minValue=0, maxValue=5)
    score_id = _create(
        project,
        id="my-score",
        traceId=trace_id,
        observationId=obs_id,
        name="helpfulness",
        value=4.5,
        comment="solid",
        metadata={"judge": "gpt", "round": 2},
        environment="Staging",
        queueId="queue-1",
        source="ANNOTATION",
        configId=config_id,
    )
    assert score_id == "my-score"
    score = _one(project, score_id)
    assert score["observationId"] == obs_id
    assert score["comment"] == "solid"
    assert score["metadata"] == {"judge": "gpt", "round": 2}
    assert score["environment"] == "staging"
    assert (score["queueId"], score["configId"], score["source"]) == (
        "queue-1",
        config_id,
        "ANNOTATION",
    )


def test_post_accepts_explicit_nulls_for_optional_fields_as_sdk_clients_send_them(project):
    trace_id = new_id()
    score_id = _create(
        project,
        id=None,
        traceId=trace_id,
        observationId=None,
        sessionId=None,
        datasetRunId=None,
        name="sdk",
        value=1,
        comment=None,
        metadata=None,
        dataType=None,
        configId=None,
        environment=None,
        queueId=None,
        source=None,
    )
    score = _one(project, score_id)
    assert (score["traceId"], score["dataType"], score["source"]) == (trace_id, "NUMERIC", "API")


def test_session_and_dataset_run_scores_are_stored(project):
    session_score = _create(project, sessionId="sess-1", name="s", value=1)
    run_score = _create(project, datasetRunId="run-1", name="r", value=2)
    assert _one(project, session_score)["sessionId"] == "sess-1"
    assert _one(project, session_score)["traceId"] is None
    assert _one(project, run_score)["datasetRunId"] == "run-1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"traceId": "t", "name": "b", "value": 2, "dataType": "BOOLEAN"}, "value"),
        ({"traceId": "t", "name": "c", "value": 1, "dataType": "CATEGORICAL"}, "value"),
        ({"traceId": "t", "name": "n", "value": "high", "dataType": "NUMERIC"}, "value"),
        ({"traceId": "t", "name": "t", "value": "x" * 501, "dataType": "TEXT"}, "value"),
        ({"traceId": "t", "value": 1}, "name"),
        ({"traceId": "t", "name": "", "value": 1}, "name"),
        ({"traceId": "t", "name": "v"}, "value"),
        ({"traceId": "t", "name": "v", "value": True}, "value"),
        ({"traceId": "t", "sessionId": "s", "name": "x", "value": 1}, "sessionId"),
        ({"name": "x", "value": 1}, "traceId"),
        ({"observationId": "o", "sessionId": "s", "name": "x", "value": 1}, "observationId"),
        ({"traceId": "t", "name": "x", "value": 1, "dataType": "PERCENT"}, "dataType"),
        ({"traceId": "t", "name": "x", "value": 1, "source": "EVAL"}, "source"),
        ({"traceId": "t", "name": "x", "value": 1, "source": "USER"}, "source"),
        ({"traceId": "t", "name": "x", "value": 1, "source": "ANNOTATION"}, "configId"),
        (
            {"traceId": "t", "name": "x", "value": "y", "dataType": "CORRECTION", "configId": "c"},
            "configId",
        ),
        ({"traceId": 5, "name": "x", "value": 1}, "traceId"),
        ({"id": 7, "traceId": "t", "name": "x", "value": 1}, "id"),
        ("a score", "body"),
        ([], "body"),
    ],
)
def test_invalid_score_is_refused_with_400_naming_the_field(project, body, field):
    _bad_request(_post(project, body), field)
    assert _list(project)["data"] == []


def test_a_list_of_scores_is_one_request_202_or_207(project):
    """The Python SDK >= 5 posts its scores as a list. The stored spec documents only the
    single-score form, so these replies (Langfuse's newer API) are not contract-checked."""
    r = project.post(
        "/api/public/scores",
        json=[
            {"traceId": "t", "name": "a", "value": 1},
            {"traceId": "t", "name": "b", "value": "yes", "dataType": "CATEGORICAL"},
        ],
    )
    assert (r.status_code, r.json()) == (202, {"message": "Accepted"})
    r = project.post(
        "/api/public/scores",
        json=[
            {"traceId": "t", "name": "c", "value": 0.5},
            {"traceId": "t", "name": "d", "value": "high", "dataType": "NUMERIC"},
        ],
    )
    assert r.status_code == 207, r.text
    assert r.json() == {
        "accepted": 1,
        "rejected": 1,
        "errors": [{"message": "[1] value: NUMERIC scores need a numeric value"}],
    }
    scores = {s["name"]: s for s in _list(project)["data"]}
    assert sorted(scores) == ["a", "b", "c"]
    assert scores["b"]["stringValue"] == "yes" and scores["c"]["value"] == 0.5


def test_invalid_json_body_is_refused_with_400(project):
    r = _checked(
        project.post(
            "/api/public/scores", content=b"{not json", headers={"content-type": "application/json"}
        )
    )
    _bad_request(r, "body")


def test_ingestion_refuses_the_same_invalid_scores_per_event(project):
    r = project.ingest(
        _score(new_id(), 0, traceId="t", name="b", value=2, dataType="BOOLEAN"),
        _score(new_id(), 0, traceId="t", sessionId="s", name="x", value=1),
    )
    assert r.status_code == 207
    assert [e["status"] for e in r.json()["errors"]] == [400, 400]


def test_creating_a_score_needs_the_secret_key(project):
    r = project.http.post(
        "/api/public/scores",
        json={"traceId": "t", "name": "x", "value": 1},
        headers={"Authorization": f"Bearer {project.public_key}"},
    )
    assert_response_matches(r)
    assert r.status_code == 403


# -- updates merge -----------------------------------------------------------------------------


def test_reposting_the_same_id_updates_the_score_without_a_duplicate(project):
    trace_id = new_id()
    score_id = _create(
        project, traceId=trace_id, name="q", value=0.1, comment="first", metadata={"a": 1}
    )
    before = _one(project, score_id)
    assert (
        _create(project, id=score_id, traceId=trace_id, name="q", value=0.9, metadata={"b": 2})
        == score_id
    )
    after = _one(project, score_id)
    assert after["value"] == 0.9
    assert after["comment"] == "first"  # absent keys keep the stored value
    assert after["metadata"] == {"a": 1, "b": 2}  # metadata merges
    assert after["timestamp"] == before["timestamp"]  # the first timestamp stays
    listed = _list(project)
    assert [s["id"] for s in listed["data"]] == [score_id]
    assert listed["meta"]["totalItems"] == 1


def test_ingested_update_of_a_posted_score_merges_into_it(project):
    trace_id = new_id()
    score_id = _create(project, traceId=trace_id, name="q", value=1, comment="posted")
    _ingest(project, _score(score_id, 10**9, traceId=trace_id, name="q", value=0))
    score = _one(project, score_id)
    assert (score["value"], score["comment"]) == (0, "posted")
    assert _list(project)["meta"]["totalItems"] == 1


def test_environment_of_a_score_cannot_change(project):
    score_id = _create(project, traceId=new_id(), name="q", value=1, environment="prod")
    _create(project, id=score_id, traceId=new_id(), name="q", value=2, environment="dev")
    assert _one(project, score_id)["environment"] == "prod"


# -- v2 list: filters --------------------------------------------------------------------------


def _seed(project) -> dict[str, str]:
    """Two traces and eight scores of every kind, at known times (ts(1) .. ts(8)).

    Returns the ids of the two score configs, by their placeholders ``cfg-1`` and ``cfg-2``.
    """
    configs = {
        "cfg-1": _config(
            project, "label", "CATEGORICAL",
            categories=[{"label": "yes", "value": 0.5}, {"label": "no", "value": 0}],
        ),
        "cfg-2": _config(project, "ok", "BOOLEAN"),
    }  # fmt: skip
    _ingest(
        project,
        event(
            "trace-create",
            {"id": "T1", "userId": "alice", "tags": ["a", "b"], "environment": "prod", "sessionId": "sess-1"},
        ),
        event("trace-create", {"id": "T2", "userId": "bob", "tags": ["a"]}),
        _score(
            "s1", 1, traceId="T1", name="quality", value=0.9, environment="prod",
            comment="good answer", metadata={"k": "v1"},
        ),
        _score(
            "s2", 2, traceId="T1", observationId="O1", name="quality", value=0.2,
            source="EVAL", environment="prod", metadata={"k": "v2"},
        ),
        _score("s3", 3, traceId="T2", name="label", value="yes", configId=configs["cfg-1"]),
        _score(
            "s4", 4, traceId="T2", name="ok", value=1, dataType="BOOLEAN", queueId="q-1",
            source="ANNOTATION", configId=configs["cfg-2"],
        ),
        _score("s5", 5, sessionId="sess-9", name="session-score", value=3, environment="staging"),
        _score("s6", 6, datasetRunId="run-1", name="run-score", value=5),
        _score("s7", 7, traceId="T2", observationId="O2", name="note", value="hello", dataType="TEXT"),
        _score("s8", 8, traceId="no-such-trace", name="orphan", value=1),
    )  # fmt: skip
    return configs


ALL = {f"s{i}" for i in range(1, 9)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ALL),
        ({"userId": "alice"}, {"s1", "s2"}),
        ({"name": "quality"}, {"s1", "s2"}),
        ({"fromTimestamp": ts(3)}, {"s3", "s4", "s5", "s6", "s7", "s8"}),
        ({"toTimestamp": ts(3)}, {"s1", "s2"}),
        ({"fromTimestamp": ts(2), "toTimestamp": ts(4)}, {"s2", "s3"}),
        ({"environment": "prod"}, {"s1", "s2"}),
        ({"environment": ["prod", "staging"]}, {"s1", "s2", "s5"}),
        ({"environment": "prod,staging"}, {"s1", "s2", "s5"}),
        ({"source": "EVAL"}, {"s2"}),
        ({"source": "ANNOTATION"}, {"s4"}),
        ({"operator": ">=", "value": 1}, {"s4", "s5", "s6", "s8"}),
        ({"operator": "<", "value": 0.5}, {"s2"}),
        ({"operator": "=", "value": 3}, {"s5"}),
        # s3's category "yes" has the value 0.5 in its config
        ({"operator": "!=", "value": 1}, {"s1", "s2", "s3", "s5", "s6"}),
        ({"operator": "<=", "value": 0}, set()),
        ({"operator": ">", "value": 4}, {"s6"}),
        ({"scoreIds": "s1, s3"}, {"s1", "s3"}),
        ({"configId": "cfg-1"}, {"s3"}),
        ({"sessionId": "sess-9"}, {"s5"}),
        ({"datasetRunId": "run-1"}, {"s6"}),
        ({"traceId": "T2"}, {"s3", "s4", "s7"}),
        ({"observationId": "O1,O2"}, {"s2", "s7"}),
        ({"queueId": "q-1"}, {"s4"}),
        ({"dataType": "TEXT"}, {"s7"}),
        ({"dataType": "BOOLEAN"}, {"s4"}),
        ({"dataType": "CATEGORICAL"}, {"s3"}),
        ({"dataType": "NUMERIC"}, {"s1", "s2", "s5", "s6", "s8"}),
        ({"traceTags": "a"}, {"s1", "s2", "s3", "s4", "s7"}),
        ({"traceTags": ["a", "b"]}, {"s1", "s2"}),
        ({"userId": "bob", "environment": "default"}, {"s3", "s4", "s7"}),
        ({"userId": "alice", "environment": "default"}, set()),
        ({"name": "quality", "source": "API"}, {"s1"}),
        (
            {
                "filter": '[{"type":"stringObject","column":"metadata","key":"k","operator":"=","value":"v1"}]'
            },
            {"s1"},
        ),
        (
            {
                "filter": '[{"type":"string","column":"comment","operator":"contains","value":"GOOD"}]'
            },
            {"s1"},
        ),
        ({"filter": '[{"type":"number","column":"value","operator":">","value":2}]'}, {"s5", "s6"}),
        (
            {
                "filter": '[{"type":"arrayOptions","column":"traceTags","operator":"any of","value":["b"]}]'
            },
            {"s1", "s2"},
        ),
        (
            {
                "name": "quality",
                "filter": '[{"type":"datetime","column":"timestamp","operator":">","value":"'
                + ts(1)
                + '"}]',
            },
            {"s2"},
        ),
    ],
)
def test_v2_list_filters(project, params, expected):
    configs = _seed(project)
    body = _list(project, **_with_configs(params, configs))
    assert {s["id"] for s in body["data"]} == expected
    assert body["meta"]["totalItems"] == len(expected)


def test_v2_list_is_newest_first_with_the_trace_of_each_score(project):
    _seed(project)
    data = _list(project)["data"]
    assert [s["id"] for s in data] == [f"s{i}" for i in range(8, 0, -1)]
    by_id = {s["id"]: s for s in data}
    assert by_id["s1"]["trace"] == {
        "userId": "alice",
        "tags": ["a", "b"],
        "environment": "prod",
        "sessionId": "sess-1",
    }
    assert by_id["s3"]["trace"]["userId"] == "bob"
    assert by_id["s5"]["trace"] is None  # a session score has no trace
    assert by_id["s8"]["trace"] is None  # its trace was never stored
    assert by_id["s3"]["stringValue"] == "yes"


def test_v2_list_without_the_trace_field_group_leaves_trace_null(project):
    _seed(project)
    data = _list(project, fields="score")["data"]
    assert data and all(s["trace"] is None for s in data)
    assert all("name" in s and "value" in s for s in data)


def test_v2_list_pages_with_meta(project):
    _ingest(project, *[_score(f"p{i}", i, traceId="T", name="n", value=i) for i in range(5)])
    pages = [_list(project, page=p, limit=2) for p in (1, 2, 3, 4)]
    assert [p["meta"] for p in pages] == [
        {"page": p, "limit": 2, "totalItems": 5, "totalPages": 3} for p in (1, 2, 3, 4)
    ]
    assert [[s["id"] for s in p["data"]] for p in pages] == [["p4", "p3"], ["p2", "p1"], ["p0"], []]
    assert _list(project)["meta"] == {"page": 1, "limit": 50, "totalItems": 5, "totalPages": 1}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"dataType": "PERCENT"}, "dataType"),
        ({"source": "USER"}, "source"),
        ({"operator": ">"}, "value"),
        ({"value": 1}, "operator"),
        ({"operator": "~", "value": 1}, "operator"),
        ({"operator": ">", "value": "high"}, "value"),
        ({"operator": ">", "value": "nan"}, "value"),
        ({"fromTimestamp": "yesterday"}, "fromTimestamp"),
        ({"toTimestamp": "2026-13-45"}, "toTimestamp"),
        ({"fields": "score,everything"}, "fields"),
        ({"fields": "score", "userId": "alice"}, "fields"),
        ({"fields": "score", "traceTags": "a"}, "fields"),
        ({"filter": "not json"}, "filter"),
        ({"filter": '[{"type":"string","column":"nope","operator":"=","value":"x"}]'}, "filter"),
    ],
)
def test_v2_list_bad_parameter_is_refused_with_400_naming_it(project, params, field):
    r = _checked(project.get("/api/public/v2/scores", params=params))
    _bad_request(r, field)


# -- get one, delete, isolation ----------------------------------------------------------------


def test_get_unknown_score_is_404(project):
    r = _checked(project.get("/api/public/v2/scores/nope"))
    assert r.status_code == 404
    assert r.json()["message"] == "Score not found"


def test_delete_removes_the_score_then_404(project):
    keep = _create(project, traceId=new_id(), name="keep", value=1)
    gone = _create(project, traceId=new_id(), name="gone", value=1)
    r = _checked(project.delete(f"/api/public/scores/{gone}"))
    assert r.status_code == 204
    assert r.content == b""
    assert _checked(project.get(f"/api/public/v2/scores/{gone}")).status_code == 404
    assert [s["id"] for s in _list(project)["data"]] == [keep]
    again = _checked(project.delete(f"/api/public/scores/{gone}"))
    assert again.status_code == 404


def test_scores_are_invisible_to_other_projects(project, other_project):
    trace_id = new_id()
    score_id = _create(project, traceId=trace_id, name="mine", value=1)
    assert _list(other_project)["data"] == []
    assert _list(other_project, traceId=trace_id)["meta"]["totalItems"] == 0
    assert _list_v3(other_project)["data"] == []
    assert _checked(other_project.get(f"/api/public/v2/scores/{score_id}")).status_code == 404
    assert _checked(other_project.delete(f"/api/public/scores/{score_id}")).status_code == 404
    assert _one(project, score_id)["name"] == "mine"


def test_same_score_id_in_two_projects_stays_two_scores(project, other_project):
    _create(project, id="shared", traceId=new_id(), name="a", value=1)
    _create(other_project, id="shared", traceId=new_id(), name="b", value=2)
    assert _one(project, "shared")["name"] == "a"
    assert _one(other_project, "shared")["name"] == "b"


# -- v3 list -----------------------------------------------------------------------------------


def test_v3_list_has_core_fields_and_a_typed_value(project):
    _seed(project)
    data = {s["id"]: s for s in _list_v3(project)["data"]}
    assert data["s1"]["value"] == 0.9
    assert data["s3"]["value"] == "yes"
    assert data["s4"]["value"] is True
    assert data["s7"]["value"] == "hello"
    assert "comment" not in data["s1"] and "subject" not in data["s1"]
    assert set(data["s1"]) == {
        "id", "projectId", "name", "dataType", "value", "source", "timestamp", "environment",
        "createdAt", "updatedAt",
    }  # fmt: skip


def test_v3_field_groups_add_details_subject_and_annotation(project):
    configs = _seed(project)
    data = {s["id"]: s for s in _list_v3(project, fields="details,subject,annotation")["data"]}
    assert (data["s1"]["comment"], data["s1"]["metadata"]) == ("good answer", {"k": "v1"})
    assert data["s3"]["configId"] == configs["cfg-1"]
    assert data["s1"]["subject"] == {"kind": "trace", "id": "T1"}
    assert data["s2"]["subject"] == {"kind": "observation", "id": "O1", "traceId": "T1"}
    assert data["s5"]["subject"] == {"kind": "session", "id": "sess-9"}
    assert data["s6"]["subject"] == {"kind": "experiment", "id": "run-1"}
    assert (data["s4"]["queueId"], data["s4"]["authorUserId"]) == ("q-1", None)


def test_v3_cursor_walks_every_score_once(project):
    # Equal timestamps included: the id breaks the tie.
    _ingest(project, *[_score(f"c{i}", i // 2, traceId="T", name="n", value=i) for i in range(7)])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = _list_v3(project, **params)
        seen += [s["id"] for s in body["data"]]
        pages += 1
        cursor = body["meta"].get("cursor")
        assert body["meta"]["limit"] == 3
        if not cursor:
            break
    assert pages == 3
    assert seen == ["c6", "c5", "c4", "c3", "c2", "c1", "c0"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"id": "s1,s2"}, {"s1", "s2"}),
        ({"name": "quality,label"}, {"s1", "s2", "s3"}),
        ({"source": "eval,annotation"}, {"s2", "s4"}),
        ({"dataType": "text"}, {"s7"}),
        ({"environment": "prod,staging"}, {"s1", "s2", "s5"}),
        ({"configId": "cfg-1,cfg-2"}, {"s3", "s4"}),
        ({"queueId": "q-1"}, {"s4"}),
        ({"traceId": "T1"}, {"s1", "s2"}),
        ({"traceId": "T1,T2", "observationId": "O1,O2"}, {"s2", "s7"}),
        ({"sessionId": "sess-9"}, {"s5"}),
        ({"experimentId": "run-1"}, {"s6"}),
        ({"fromTimestamp": ts(7)}, {"s7", "s8"}),
        ({"toTimestamp": ts(2)}, {"s1"}),
        ({"dataType": "NUMERIC", "value": "0.9,3"}, {"s1", "s5"}),
        ({"dataType": "BOOLEAN", "value": "true"}, {"s4"}),
        ({"dataType": "BOOLEAN", "value": "false"}, set()),
        ({"dataType": "CATEGORICAL", "value": "yes,no"}, {"s3"}),
        ({"dataType": "NUMERIC", "valueMin": 1, "valueMax": 3}, {"s5", "s8"}),
    ],
)
def test_v3_list_filters(project, params, expected):
    configs = _seed(project)
    assert {
        s["id"] for s in _list_v3(project, **_with_configs(params, configs))["data"]
    } == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"fields": "details,trace"}, "fields"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"observationId": "O1"}, "observationId"),
        ({"traceId": "T1", "sessionId": "s"}, "sessionId"),
        ({"sessionId": "s", "experimentId": "r"}, "experimentId"),
        ({"value": "1"}, "value"),
        ({"dataType": "NUMERIC,BOOLEAN", "value": "1"}, "value"),
        ({"dataType": "TEXT", "value": "x"}, "value"),
        ({"dataType": "BOOLEAN", "value": "yes"}, "value"),
        ({"dataType": "NUMERIC", "value": "high"}, "value"),
        ({"valueMin": 1}, "valueMin"),
        ({"dataType": "BOOLEAN", "valueMax": 1}, "valueMax"),
        ({"dataType": "PERCENT"}, "dataType"),
        ({"source": "user"}, "source"),
        ({"fromTimestamp": "soon"}, "fromTimestamp"),
    ],
)
def test_v3_list_bad_parameter_is_refused_with_400_naming_it(project, params, field):
    r = _checked(project.get("/api/public/v3/scores", params=params))
    _bad_request(r, field)


# -- scores checked against their score config -------------------------------------------------


def _configs(project) -> dict[str, str]:
    """One config of every data type; their ids by data type."""
    return {
        "NUMERIC": _config(project, "accuracy", "NUMERIC", minValue=0, maxValue=1),
        "CATEGORICAL": _config(
            project, "tone", "CATEGORICAL",
            categories=[{"label": "rude", "value": 0}, {"label": "friendly", "value": 2}],
        ),
        "BOOLEAN": _config(project, "thumbs", "BOOLEAN"),
        "TEXT": _config(project, "notes", "TEXT"),
    }  # fmt: skip


# (config, score body without configId/traceId, expected dataType, value, stringValue)
CONFIGURED = [
    ("NUMERIC", {"name": "accuracy", "value": 0.25}, "NUMERIC", 0.25, None),
    ("NUMERIC", {"name": "accuracy", "value": 1, "dataType": "NUMERIC"}, "NUMERIC", 1, None),
    ("NUMERIC", {"name": "accuracy", "value": 0}, "NUMERIC", 0, None),
    ("CATEGORICAL", {"name": "tone", "value": "friendly"}, "CATEGORICAL", 2, "friendly"),
    ("CATEGORICAL", {"name": "tone", "value": "rude", "dataType": "CATEGORICAL"}, "CATEGORICAL", 0, "rude"),
    ("BOOLEAN", {"name": "thumbs", "value": 1}, "BOOLEAN", 1, "True"),
    ("BOOLEAN", {"name": "thumbs", "value": 0, "dataType": "BOOLEAN"}, "BOOLEAN", 0, "False"),
    ("TEXT", {"name": "notes", "value": "well argued"}, "TEXT", None, "well argued"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "body", "data_type", "value", "string_value"), CONFIGURED)
def test_score_with_a_config_takes_its_type_and_category_value(
    project, kind, body, data_type, value, string_value
):
    config_id = _configs(project)[kind]
    posted = _create(project, traceId=new_id(), configId=config_id, **body)
    score_id = new_id()
    _ingest(project, _score(score_id, 0, traceId=new_id(), configId=config_id, **body))
    for sid in (posted, score_id):
        score = _one(project, sid)
        assert (score["dataType"], score["value"], score.get("stringValue")) == (
            data_type,
            value,
            string_value,
        )
        assert score["configId"] == config_id


# (config, score body without configId/traceId, field named by the error)
MISFITS = [
    ("NUMERIC", {"name": "accuracy", "value": 1.5}, "value"),
    ("NUMERIC", {"name": "accuracy", "value": -0.1}, "value"),
    ("NUMERIC", {"name": "accuracy", "value": "high"}, "value"),
    ("NUMERIC", {"name": "accuracy", "value": 1, "dataType": "BOOLEAN"}, "dataType"),
    ("NUMERIC", {"name": "Accuracy", "value": 0.5}, "name"),
    ("CATEGORICAL", {"name": "tone", "value": "neutral"}, "value"),
    ("CATEGORICAL", {"name": "tone", "value": 2}, "value"),
    ("CATEGORICAL", {"name": "tone", "value": "rude", "dataType": "TEXT"}, "dataType"),
    ("BOOLEAN", {"name": "thumbs", "value": 0.5}, "value"),
    ("BOOLEAN", {"name": "thumbs", "value": "True"}, "value"),
    ("BOOLEAN", {"name": "thumbs", "value": 1, "dataType": "NUMERIC"}, "dataType"),
    ("TEXT", {"name": "notes", "value": 3}, "value"),
    ("TEXT", {"name": "notes", "value": "x" * 501, "dataType": "TEXT"}, "value"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "body", "field"), MISFITS)
def test_score_that_does_not_fit_its_config_is_refused_naming_the_field(project, kind, body, field):
    config_id = _configs(project)[kind]
    _bad_request(_post(project, {"traceId": new_id(), "configId": config_id, **body}), field)
    bad = _score(new_id(), 0, traceId=new_id(), configId=config_id, **body)
    r = project.ingest(bad)
    assert r.status_code == 207
    assert r.json()["successes"] == []
    (error,) = r.json()["errors"]
    assert (error["id"], error["status"], error["message"]) == (
        bad["id"],
        400,
        "Invalid request data",
    )
    assert error["error"].startswith(f"body.{field}: "), error
    assert _list(project)["data"] == []


def test_unknown_or_other_projects_config_is_refused(project, other_project):
    foreign = _config(other_project, "accuracy", "NUMERIC")
    for config_id in ("no-such-config", foreign):
        body = {"traceId": new_id(), "name": "accuracy", "value": 0.5, "configId": config_id}
        r = _post(project, body)
        _bad_request(r, "configId")
        assert config_id in r.json()["message"]
    assert _list(project)["data"] == []


def test_archived_config_refuses_scores_until_unarchived(project):
    config_id = _config(project, "accuracy", "NUMERIC")
    body = {"traceId": new_id(), "name": "accuracy", "value": 0.5, "configId": config_id}
    _create(project, **body)  # also warms the config cache of this process
    archive = {"isArchived": True}
    assert (
        project.request("PATCH", f"/api/public/score-configs/{config_id}", json=archive).status_code
        == 200
    )
    r = _post(project, body)
    _bad_request(r, "configId")
    assert "archived" in r.json()["message"]
    unarchive = {"isArchived": False}
    assert (
        project.request(
            "PATCH", f"/api/public/score-configs/{config_id}", json=unarchive
        ).status_code
        == 200
    )
    _create(project, **body)
    assert _list(project)["meta"]["totalItems"] == 2


def test_config_changes_apply_to_the_next_score_at_once(project):
    config_id = _config(project, "accuracy", "NUMERIC", minValue=0, maxValue=10)
    body = {"traceId": new_id(), "name": "accuracy", "value": 7, "configId": config_id}
    _create(project, **body)
    patch = {"maxValue": 5}
    assert (
        project.request("PATCH", f"/api/public/score-configs/{config_id}", json=patch).status_code
        == 200
    )
    _bad_request(_post(project, body), "value")


def test_config_created_by_another_process_is_found_at_once(project):
    """A configId missing from the cached snapshot makes it re-read (another process may have
    just created the config)."""
    warm = _config(project, "accuracy", "NUMERIC")
    _create(project, traceId=new_id(), name="accuracy", value=1, configId=warm)
    engine = project.http.app.state.services.engine
    config = new_config(
        {"name": "thumbs", "dataType": "BOOLEAN"},
        project_id=project.id,
        config_id="made-elsewhere",
        now=datetime.now(UTC),
    )
    with engine.begin() as conn:  # behind the back of this process's cache
        config_store.insert_config(conn, config)
    score_id = _create(project, traceId=new_id(), name="thumbs", value=1, configId="made-elsewhere")
    assert _one(project, score_id)["stringValue"] == "True"


def test_ingestion_keeps_the_valid_scores_of_a_batch_with_misfits(project):
    configs = _configs(project)
    good = _score(
        new_id(), 0, traceId=new_id(), name="thumbs", value=1, configId=configs["BOOLEAN"]
    )
    plain = _score(new_id(), 1, traceId=new_id(), name="free", value=42)
    misfit = _score(
        new_id(), 2, traceId=new_id(), name="tone", value="meh", configId=configs["CATEGORICAL"]
    )
    unknown = _score(new_id(), 3, traceId=new_id(), name="x", value=1, configId="nope")
    trace = event("trace-create", {"id": new_id()})
    r = project.ingest(good, misfit, plain, unknown, trace)
    assert r.status_code == 207
    assert_response_matches(r)
    assert [s["id"] for s in r.json()["successes"]] == [good["id"], plain["id"], trace["id"]]
    errors = {e["id"]: e for e in r.json()["errors"]}
    assert set(errors) == {misfit["id"], unknown["id"]}
    assert errors[misfit["id"]]["error"].startswith("body.value: ")
    assert errors[unknown["id"]]["error"].startswith("body.configId: ")
    assert {s["name"] for s in _list(project)["data"]} == {"thumbs", "free"}


def test_a_list_of_scores_reports_config_misfits_per_item(project):
    config_id = _config(project, "accuracy", "NUMERIC", maxValue=1)
    r = project.post(
        "/api/public/scores",
        json=[
            {"traceId": "t", "name": "accuracy", "value": 0.5, "configId": config_id},
            {"traceId": "t", "name": "accuracy", "value": 2, "configId": config_id},
            {"traceId": "t", "name": "free", "value": 2},
            {"traceId": "t", "name": "other", "value": 2, "configId": config_id},
        ],
    )
    assert r.status_code == 207, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [e["message"].split(":")[0] for e in body["errors"]] == ["[1] value", "[3] name"]
    assert sorted(s["value"] for s in _list(project)["data"]) == [0.5, 2]


def test_scores_without_config_never_read_the_configs(project):
    services = project.http.app.state.services
    _ingest(project, _score(new_id(), 0, traceId=new_id(), name="free", value=1))
    _create(project, traceId=new_id(), name="free", value=2)
    assert services.score_configs.cached(project.id) is None


# -- ANNOTATION and CORRECTION rules -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"traceId": "t", "name": "x", "value": 1, "source": "ANNOTATION"}, "configId"),
        ({"traceId": "t", "name": "x", "value": 1, "source": "ANNOTATION", "configId": ""}, "configId"),
        ({"sessionId": "s", "name": "x", "value": "fix", "dataType": "CORRECTION"}, "sessionId"),
        ({"datasetRunId": "r", "name": "x", "value": "fix", "dataType": "CORRECTION"}, "datasetRunId"),
        ({"traceId": "t", "name": "x", "value": "y", "dataType": "CORRECTION", "configId": "c"}, "configId"),
    ],
)  # fmt: skip
def test_annotation_and_correction_rules_hold_on_both_paths(project, body, field):
    _bad_request(_post(project, body), field)
    bad = _score(new_id(), 0, **body)
    r = project.ingest(bad)
    (error,) = r.json()["errors"]
    assert error["id"] == bad["id"] and error["error"].startswith(f"body.{field}: ")
    assert _list(project)["data"] == []


def test_annotation_correction_needs_no_config(project):
    score_id = _create(
        project, traceId=new_id(), name="fix", value="better answer", dataType="CORRECTION",
        source="ANNOTATION",
    )  # fmt: skip
    assert _one(project, score_id)["source"] == "ANNOTATION"


def test_annotation_score_with_its_config_is_stored(project):
    config_id = _config(project, "tone", "CATEGORICAL", categories=[{"label": "ok", "value": 1}])
    score_id = new_id()
    _ingest(
        project,
        _score(score_id, 0, traceId=new_id(), name="tone", value="ok", source="ANNOTATION",
               configId=config_id, queueId="q"),
    )  # fmt: skip
    score = _one(project, score_id)
    assert (score["source"], score["value"], score["queueId"]) == ("ANNOTATION", 1, "q")


# -- browser feedback: Bearer <public key> may send scores, rate-limited -----------------------


def test_public_key_alone_may_send_configured_feedback_scores(project):
    config_id = _config(project, "thumbs", "BOOLEAN")
    bearer = {"Authorization": f"Bearer {project.public_key}"}
    good = _score(new_id(), 0, traceId=new_id(), name="thumbs", value=1, configId=config_id)
    bad = _score(new_id(), 0, traceId=new_id(), name="thumbs", value=3, configId=config_id)
    r = project.http.post("/api/public/ingestion", json={"batch": [good, bad]}, headers=bearer)
    assert r.status_code == 207
    assert [s["id"] for s in r.json()["successes"]] == [good["id"]]
    assert [e["id"] for e in r.json()["errors"]] == [bad["id"]]
    assert _one(project, good["body"]["id"])["stringValue"] == "True"


@pytest.fixture
def limited_app(tmp_path):
    """An app (embedded store) whose public keys may send 12 requests a minute, bursts of 2."""
    settings = Settings(data_dir=tmp_path, public_key_rate_per_minute=12)
    with TestClient(create_app(settings)) as client:
        yield client


def test_public_key_requests_are_rate_limited_per_key(limited_app):
    first, second = Project(limited_app), Project(limited_app)

    def send(p: Project) -> httpx.Response:
        score = _score(new_id(), 0, traceId=new_id(), name="thumbs", value=1)
        return limited_app.post(
            "/api/public/ingestion",
            json={"batch": [score]},
            headers={"Authorization": f"Bearer {p.public_key}"},
        )

    assert [send(first).status_code for _ in range(2)] == [207, 207]  # the burst
    r = send(first)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "TooManyRequestsError"
    assert 1 <= int(r.headers["Retry-After"]) <= 5  # a token every 5 s
    assert send(second).status_code == 207  # another key has its own bucket
    # The secret key is not limited.
    assert first.ingest(_score(new_id(), 0, traceId=new_id(), name="x", value=1)).status_code == 207
    assert _list(first)["meta"]["totalItems"] == 3


def test_public_key_rate_limit_can_be_disabled(tmp_path):
    with TestClient(
        create_app(Settings(data_dir=tmp_path, public_key_rate_per_minute=0))
    ) as client:
        p = Project(client)
        bearer = {"Authorization": f"Bearer {p.public_key}"}
        for _ in range(30):
            batch = {"batch": [_score(new_id(), 0, traceId="t", name="x", value=1)]}
            assert (
                client.post("/api/public/ingestion", json=batch, headers=bearer).status_code == 207
            )


def test_token_bucket_refills_at_the_rate():
    limiter = PublicKeyLimiter(rate_per_minute=600)  # 10 a second, bursts of 100
    assert all(limiter.take("pk") == 0 for _ in range(100))
    wait = limiter.take("pk")
    assert 0 < wait <= 0.1
    assert limiter.take("other") == 0
