"""POST /api/public/ingestion: event types, merge semantics, retries, bad input."""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.factories import event, new_id, ts


def _trace(project, trace_id):
    r = project.get(f"/api/public/traces/{trace_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _obs(project, trace_id, obs_id):
    (obs,) = [o for o in _trace(project, trace_id)["observations"] if o["id"] == obs_id]
    return obs


def test_every_event_type_is_accepted_with_207(project):
    tid = new_id()
    types = [
        "span-create",
        "span-update",
        "generation-create",
        "generation-update",
        "event-create",
        "agent-create",
        "tool-create",
        "chain-create",
        "retriever-create",
        "evaluator-create",
        "embedding-create",
        "guardrail-create",
    ]
    events = [event("trace-create", {"id": tid, "name": "all"})]
    obs_ids = {}
    for i, type_ in enumerate(types):
        oid = new_id()
        obs_ids[type_] = oid
        events.append(event(type_, {"id": oid, "traceId": tid, "name": type_}, at=i))
    events.append(
        event(
            "observation-create",
            {"id": "legacy-1", "traceId": tid, "type": "GENERATION", "name": "legacy"},
        )
    )
    events.append(
        event(
            "observation-update",
            {"id": "legacy-1", "traceId": tid, "type": "GENERATION", "output": "done"},
            at=5,
        )
    )
    events.append(
        event("score-create", {"id": new_id(), "traceId": tid, "name": "quality", "value": 0.9})
    )
    events.append(event("sdk-log", {"log": {"msg": "hello"}}))
    r = project.ingest(*events)
    assert r.status_code == 207
    body = r.json()
    assert body["errors"] == []
    assert {s["id"] for s in body["successes"]} == {e["id"] for e in events}
    assert all(s["status"] == 201 for s in body["successes"])

    trace = _trace(project, tid)
    by_id = {o["id"]: o for o in trace["observations"]}
    expected = {
        "span-create": "SPAN",
        "span-update": "SPAN",
        "generation-create": "GENERATION",
        "generation-update": "GENERATION",
        "event-create": "EVENT",
        "agent-create": "AGENT",
        "tool-create": "TOOL",
        "chain-create": "CHAIN",
        "retriever-create": "RETRIEVER",
        "evaluator-create": "EVALUATOR",
        "embedding-create": "EMBEDDING",
        "guardrail-create": "GUARDRAIL",
    }
    for type_, obs_type in expected.items():
        assert by_id[obs_ids[type_]]["type"] == obs_type
    assert by_id["legacy-1"]["type"] == "GENERATION"
    assert by_id["legacy-1"]["output"] == "done"
    assert len(trace["scores"]) == 1


def test_update_before_create_is_merged(project):
    tid, oid = new_id(), new_id()
    # The update is sent first and in its own request; its envelope time is later.
    r1 = project.ingest(
        event(
            "generation-update",
            {
                "id": oid,
                "traceId": tid,
                "output": "Y",
                "endTime": ts(5),
                "usage": {"input": 10, "output": 5},
            },
            at=2,
        )
    )
    r2 = project.ingest(
        event(
            "generation-create",
            {
                "id": oid,
                "traceId": tid,
                "name": "llm",
                "input": "X",
                "model": "gpt-4o",
                "startTime": ts(1),
            },
            at=1,
        )
    )
    assert r1.json()["errors"] == [] and r2.json()["errors"] == []
    obs = _obs(project, tid, oid)
    assert obs["name"] == "llm"
    assert obs["input"] == "X"
    assert obs["output"] == "Y"
    assert obs["model"] == "gpt-4o"
    assert obs["startTime"] == ts(1)
    assert obs["endTime"] == ts(5)
    assert obs["usageDetails"] == {"input": 10, "output": 5, "total": 15}


def test_later_non_null_field_wins_whatever_the_arrival_order(project):
    tid = new_id()
    project.ingest(event("trace-create", {"id": tid, "name": "newer", "release": "v2"}, at=10))
    project.ingest(
        event("trace-create", {"id": tid, "name": "older", "release": "v1", "version": "1.0"}, at=5)
    )
    trace = _trace(project, tid)
    assert trace["name"] == "newer"
    assert trace["release"] == "v2"
    assert trace["version"] == "1.0"  # sent only by the older event: nothing sent is lost


def test_create_twice_and_partial_updates_fold_into_one_record(project):
    tid = new_id()
    project.ingest(
        event(
            "trace-create",
            {"id": tid, "name": "a", "userId": "u1", "metadata": {"a": 1, "nested": {"x": 1}}},
            at=0,
        ),
        event(
            "trace-create",
            {
                "id": tid,
                "sessionId": "s1",
                "metadata": {"b": 2, "nested": {"y": 2}},
                "tags": ["t2"],
            },
            at=1,
        ),
        event("trace-create", {"id": tid, "tags": ["t1"], "public": True}, at=2),
    )
    r = project.get("/api/public/traces", params={"userId": "u1"})
    assert r.json()["meta"]["totalItems"] == 1
    trace = _trace(project, tid)
    assert trace["name"] == "a"
    assert trace["userId"] == "u1"
    assert trace["sessionId"] == "s1"
    assert trace["metadata"] == {"a": 1, "nested": {"x": 1, "y": 2}, "b": 2}
    assert trace["tags"] == ["t1", "t2"]
    assert trace["public"] is True


def test_explicit_null_clears_trace_user_but_absent_keeps_it(project):
    tid = new_id()
    project.ingest(event("trace-create", {"id": tid, "userId": "u1", "release": "r1"}, at=0))
    project.ingest(event("trace-create", {"id": tid, "userId": None}, at=1))
    trace = _trace(project, tid)
    assert trace["userId"] is None
    assert trace["release"] == "r1"


def test_retrying_a_batch_creates_no_duplicates(project):
    tid, oid, sid = new_id(), new_id(), new_id()
    batch = [
        event("trace-create", {"id": tid, "name": "retry", "tags": ["x"]}),
        event("span-create", {"id": oid, "traceId": tid, "name": "s"}),
        event("score-create", {"id": sid, "traceId": tid, "name": "q", "value": 1}),
    ]
    for _ in range(3):
        assert project.ingest(*batch).json()["errors"] == []
    assert project.get("/api/public/traces").json()["meta"]["totalItems"] == 1
    trace = _trace(project, tid)
    assert len(trace["observations"]) == 1
    assert len(trace["scores"]) == 1
    assert trace["tags"] == ["x"]


def test_trace_and_score_without_body_id_are_kept_and_deduplicated_by_event_id(project):
    trace_event = event("trace-create", {"name": "no-id"}, event_id="evt-trace-1")
    for _ in range(2):
        assert project.ingest(trace_event).json()["errors"] == []
    data = project.get("/api/public/traces", params={"name": "no-id"}).json()["data"]
    assert len(data) == 1


def test_observation_implies_its_trace(project):
    tid, oid = new_id(), new_id()
    project.ingest(
        event(
            "span-create",
            {
                "id": oid,
                "traceId": tid,
                "name": "orphan",
                "startTime": ts(3),
                "environment": "staging",
            },
        )
    )
    trace = _trace(project, tid)
    assert trace["timestamp"] == ts(3)
    assert trace["environment"] == "staging"
    assert trace["name"] is None
    # A trace-create arriving later fills the trace in and its timestamp wins.
    project.ingest(event("trace-create", {"id": tid, "name": "real", "timestamp": ts(1)}, at=1))
    trace = _trace(project, tid)
    assert trace["name"] == "real"
    assert trace["timestamp"] == ts(1)


def test_observation_without_trace_id_gets_a_trace(project):
    oid = new_id()
    project.ingest(event("span-create", {"id": oid, "name": "lonely"}))
    r = project.get("/api/public/traces")
    (trace,) = r.json()["data"]
    assert trace["observations"] == [oid]


def test_update_without_trace_id_of_a_stored_observation_keeps_its_trace(project):
    """The update names only the observation: it must not imply a second, made-up trace."""
    tid, oid = new_id(), new_id()
    project.ingest(
        event("trace-create", {"id": tid, "name": "t"}),
        event("span-create", {"id": oid, "traceId": tid, "name": "s"}),
    )
    r = project.post(
        "/api/public/ingestion",
        json={"batch": [event("span-update", {"id": oid, "output": {"o": 1}}, at=1)]},
    )
    assert r.status_code == 207 and r.json()["errors"] == [], r.text
    (trace,) = project.get("/api/public/traces").json()["data"]
    assert trace["id"] == tid and trace["observations"] == [oid]
    observation = project.get(f"/api/public/observations/{oid}").json()
    assert observation["traceId"] == tid and observation["output"] == {"o": 1}


def test_legacy_usage_fields_are_normalised_to_usage_details(project):
    tid = new_id()
    o1, o2, o3 = new_id(), new_id(), new_id()
    project.ingest(
        event(
            "generation-create",
            {
                "id": o1,
                "traceId": tid,
                "usage": {"promptTokens": 7, "completionTokens": 3, "totalTokens": 10},
            },
        ),
        event(
            "generation-create",
            {
                "id": o2,
                "traceId": tid,
                "usage": {
                    "input": 4,
                    "output": 6,
                    "unit": "TOKENS",
                    "inputCost": 0.1,
                    "outputCost": 0.2,
                },
            },
        ),
        event(
            "generation-create",
            {
                "id": o3,
                "traceId": tid,
                "usageDetails": {
                    "prompt_tokens": 20,
                    "completion_tokens": 5,
                    "total_tokens": 25,
                    "prompt_tokens_details": {"cached_tokens": 8},
                },
            },
        ),
    )
    assert _obs(project, tid, o1)["usageDetails"] == {"input": 7, "output": 3, "total": 10}
    second = _obs(project, tid, o2)
    assert second["usageDetails"] == {"input": 4, "output": 6, "total": 10}
    assert second["costDetails"] == pytest.approx({"input": 0.1, "output": 0.2, "total": 0.3})
    assert _obs(project, tid, o3)["usageDetails"] == {
        "input": 12,
        "input_cached_tokens": 8,
        "output": 5,
        "total": 25,
    }
    trace = _trace(project, tid)
    assert trace["totalCost"] == pytest.approx(0.3)


def test_environment_defaults_and_is_normalised(project):
    t1, t2, t3 = new_id(), new_id(), new_id()
    project.ingest(
        event("trace-create", {"id": t1}),
        event("trace-create", {"id": t2, "environment": "Production"}),
        event("trace-create", {"id": t3, "environment": "bad env!"}),
    )
    assert _trace(project, t1)["environment"] == "default"
    assert _trace(project, t2)["environment"] == "production"
    assert _trace(project, t3)["environment"] == "default"


def test_input_output_metadata_are_stored_exactly_as_sent(project):
    tid = new_id()
    values = {
        "input": "a plain string",
        "output": {"role": "assistant", "content": [1, 2.5, None, {"deep": True}]},
        "metadata": {"zeta": "z", "alpha": {"list": [1, "2"]}},
    }
    project.ingest(event("trace-create", {"id": tid, **values}))
    trace = _trace(project, tid)
    for key, value in values.items():
        assert trace[key] == value
    assert list(trace["metadata"]) == ["zeta", "alpha"]  # key order kept

    oid = new_id()
    project.ingest(
        event(
            "span-create",
            {"id": oid, "traceId": tid, "input": '{"looks": "like json"}', "output": 42},
        )
    )
    obs = _obs(project, tid, oid)
    assert obs["input"] == '{"looks": "like json"}'
    assert obs["output"] == 42


def test_sessions_and_users_appear_as_soon_as_a_trace_names_them(project):
    tid = new_id()
    project.ingest(event("trace-create", {"id": tid, "sessionId": "sess-1", "userId": "user-1"}))
    assert (
        project.get("/api/public/traces", params={"userId": "user-1"}).json()["meta"]["totalItems"]
        == 1
    )
    sessions = project.get("/api/public/sessions").json()["data"]
    assert [s["id"] for s in sessions] == ["sess-1"]
    r = project.get("/api/public/sessions/sess-1")
    assert r.status_code == 200
    assert [t["id"] for t in r.json()["traces"]] == [tid]


def test_batch_with_one_bad_event_keeps_the_rest(project):
    tid = new_id()
    good = event("trace-create", {"id": tid, "name": "good"})
    bad_level = event("span-create", {"id": new_id(), "traceId": tid, "level": "loud"})
    bad_usage = event(
        "generation-create", {"id": new_id(), "traceId": tid, "usage": {"input": "many"}}
    )
    unknown = event("mystery-create", {"id": new_id()})
    r = project.ingest(good, bad_level, bad_usage, unknown)
    assert r.status_code == 207
    body = r.json()
    assert [s["id"] for s in body["successes"]] == [good["id"]]
    errors = {e["id"]: e for e in body["errors"]}
    assert set(errors) == {bad_level["id"], bad_usage["id"], unknown["id"]}
    assert all(e["status"] == 400 for e in errors.values())
    assert "level" in errors[bad_level["id"]]["error"]
    assert "usage.input" in errors[bad_usage["id"]]["error"]
    assert "type" in errors[unknown["id"]]["error"]
    assert _trace(project, tid)["name"] == "good"
    assert _trace(project, tid)["observations"] == []


def test_malformed_json_is_a_400_naming_the_problem(project):
    r = project.post(
        "/api/public/ingestion",
        content=b'{"batch": [',
        headers={"Content-Type": "application/json", **project.auth},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidRequestError"
    assert "JSON" in r.json()["message"]


def test_body_that_is_not_a_batch_is_a_400(project):
    r = project.post("/api/public/ingestion", json={"events": []})
    assert r.status_code == 400
    assert "batch" in r.json()["message"]


def test_empty_batch_is_a_207_with_nothing(project):
    r = project.ingest()
    assert r.status_code == 207
    assert r.json() == {"successes": [], "errors": []}


def test_body_over_the_limit_is_a_413(project):
    big = "x" * 17_000_000  # the default limit is 16 MiB
    r = project.ingest(event("trace-create", {"id": new_id(), "input": big}))
    assert r.status_code == 413
    assert r.json()["message"]


def test_gzip_encoded_batch_is_accepted(project):
    tid = new_id()
    body = gzip.compress(
        orjson.dumps({"batch": [event("trace-create", {"id": tid, "name": "zipped"})]})
    )
    r = project.http.post(
        "/api/public/ingestion",
        content=body,
        headers={**project.auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 207, r.text
    assert _trace(project, tid)["name"] == "zipped"


@pytest.mark.parametrize(
    "payload",
    [
        b"null",
        b"[]",
        b"42",
        b'"batch"',
        b'{"batch": null}',
        b'{"batch": {}}',
        b'{"batch": [null, 1, "x", []]}',
        b'{"batch": [{"id": 5, "type": "trace-create", "timestamp": "2026-01-01T00:00:00Z", "body": []}]}',
        b'{"batch": [{"id": "a", "type": "trace-create", "timestamp": "yesterday", "body": {}}]}',
        b'{"batch": [{"id": "a", "type": "span-create", "timestamp": "2026-01-01T00:00:00Z", "body": {"id": {"x": 1}}}]}',
    ],
)
def test_odd_payloads_never_crash_the_server(project, payload):
    r = project.http.post(
        "/api/public/ingestion",
        content=payload,
        headers={**project.auth, "Content-Type": "application/json"},
    )
    assert r.status_code in (207, 400)
    assert r.headers["content-type"].startswith("application/json")
    if r.status_code == 207:
        assert r.json()["successes"] == []
    assert project.get("/api/public/traces").json()["meta"]["totalItems"] == 0


def test_one_project_never_sees_another_projects_data(project, other_project):
    tid = new_id()
    project.ingest(event("trace-create", {"id": tid, "name": "mine"}))
    assert other_project.get(f"/api/public/traces/{tid}").status_code == 404
    assert other_project.get("/api/public/traces").json()["data"] == []
    # The same id in another project is another trace.
    other_project.ingest(event("trace-create", {"id": tid, "name": "theirs"}))
    assert _trace(project, tid)["name"] == "mine"
    assert _trace(other_project, tid)["name"] == "theirs"
