"""GET /api/public/observations (v1), /observations/{id} and /v2/observations (cursor, fields)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

V1 = "/api/public/observations"
V2 = "/api/public/v2/observations"
NEWEST_FIRST = ["g2", "s2", "e1", "g1", "s1"]
CORE = {"id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"}
ALWAYS = CORE | {"modelId", "inputPrice", "outputPrice", "totalPrice"}
BASIC = {
    "name",
    "level",
    "statusMessage",
    "version",
    "environment",
    "bookmarked",
    "public",
    "userId",
    "sessionId",
    "isRootObservation",
}


def seed(project, *, prefix: str = "") -> dict[str, str]:
    """Two traces with five observations; returns the trace ids."""
    t1, t2 = prefix + "t1", prefix + "t2"
    r = project.ingest(
        event(
            "trace-create",
            {
                "id": t1,
                "name": "checkout",
                "userId": "alice",
                "sessionId": "sess-1",
                "tags": ["prod", "web"],
                "release": "1.0",
            },
        ),
        event(
            "trace-create",
            {
                "id": t2,
                "name": "search",
                "userId": "bob",
                "tags": ["dev"],
                "environment": "staging",
            },
        ),
        event(
            "span-create",
            {
                "id": prefix + "s1",
                "traceId": t1,
                "name": "handle",
                "startTime": ts(0),
                "endTime": ts(10),
                "metadata": {"tier": "gold", "n": 3},
            },
        ),
        event(
            "generation-create",
            {
                "id": prefix + "g1",
                "traceId": t1,
                "parentObservationId": prefix + "s1",
                "name": "llm",
                "startTime": ts(1),
                "endTime": ts(3),
                "completionStartTime": ts(1.5),
                "model": "gpt-4o",
                "modelParameters": {"temperature": 0.2},
                "usageDetails": {"input": 10, "output": 20},
                "level": "WARNING",
                "version": "v2",
                "metadata": {"tier": "silver"},
                "input": {"messages": [{"role": "user", "content": "Hi"}]},
                "output": "hi there",
                "promptName": "greeter",
                "promptVersion": 2,
            },
        ),
        event(
            "event-create",
            {
                "id": prefix + "e1",
                "traceId": t1,
                "parentObservationId": prefix + "s1",
                "name": "oops",
                "startTime": ts(5),
                "level": "ERROR",
                "statusMessage": "boom",
            },
        ),
        event(
            "span-create",
            {
                "id": prefix + "s2",
                "traceId": t2,
                "name": "handle",
                "startTime": ts(20),
                "endTime": ts(21),
                "environment": "staging",
            },
        ),
        event(
            "generation-create",
            {
                "id": prefix + "g2",
                "traceId": t2,
                "parentObservationId": prefix + "s2",
                "name": "llm",
                "startTime": ts(21),
                "endTime": ts(22),
                "model": "claude",
                "environment": "staging",
            },
        ),
    )
    assert r.status_code == 207 and r.json()["errors"] == [], r.text
    return {"t1": t1, "t2": t2}


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert_response_matches(response)
    return [o["id"] for o in response.json()["data"]]


def fltr(*conditions: dict) -> str:
    return json.dumps(list(conditions))


def cond(type_: str, column: str, operator: str, value=None, key: str | None = None) -> dict:
    """One `filter` condition."""
    out = {"type": type_, "column": column, "operator": operator, "value": value}
    return out | ({"key": key} if key is not None else {})


def assert_bad_param(response, name: str) -> None:
    assert response.status_code == 400, response.text
    assert_response_matches(response)
    assert name in response.json()["message"]


# --- v1 list ---------------------------------------------------------------------------------


def test_list_returns_observations_newest_first_with_page_meta(project):
    seed(project)
    r = project.get(V1)
    assert ids(r) == NEWEST_FIRST
    assert r.json()["meta"] == {"page": 1, "limit": 50, "totalItems": 5, "totalPages": 1}
    g1 = next(o for o in r.json()["data"] if o["id"] == "g1")
    assert g1["usageDetails"] == {"input": 10, "output": 20, "total": 30}
    assert g1["input"] == {"messages": [{"role": "user", "content": "Hi"}]}
    assert g1["latency"] == 2.0 and g1["timeToFirstToken"] == 0.5
    assert g1["promptName"] == "greeter" and g1["promptVersion"] == 2


def test_pages_split_the_list_by_limit(project):
    seed(project)
    pages = []
    for page in (1, 2, 3, 4):
        r = project.get(V1, params={"page": page, "limit": 2})
        pages.append(ids(r))
        assert r.json()["meta"] == {"page": page, "limit": 2, "totalItems": 5, "totalPages": 3}
    assert pages == [NEWEST_FIRST[:2], NEWEST_FIRST[2:4], NEWEST_FIRST[4:], []]


@pytest.mark.parametrize("route", [V1, V2])
def test_each_simple_parameter_filters_the_list(project, route):
    seed(project)
    cases = [
        ({"name": "handle"}, ["s2", "s1"]),
        ({"userId": "alice"}, ["e1", "g1", "s1"]),
        ({"userId": "nobody"}, []),
        ({"type": "GENERATION"}, ["g2", "g1"]),
        ({"traceId": "t2"}, ["g2", "s2"]),
        ({"level": "ERROR"}, ["e1"]),
        ({"parentObservationId": "s1"}, ["e1", "g1"]),
        ({"environment": "staging"}, ["g2", "s2"]),
        ({"environment": ["staging", "default"]}, NEWEST_FIRST),
        ({"fromStartTime": ts(5)}, ["g2", "s2", "e1"]),
        ({"toStartTime": ts(5)}, ["g1", "s1"]),
        ({"fromStartTime": ts(1), "toStartTime": ts(21)}, ["s2", "e1", "g1"]),
        ({"version": "v2"}, ["g1"]),
        ({"type": "SPAN", "userId": "bob"}, ["s2"]),
    ]
    for params, expected in cases:
        assert ids(project.get(route, params=params)) == expected, params


def test_v1_meta_counts_only_the_filtered_observations(project):
    seed(project)
    r = project.get(V1, params={"userId": "alice", "limit": 2})
    assert ids(r) == ["e1", "g1"]
    assert r.json()["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2}


@pytest.mark.parametrize("route", [V1, V2])
def test_json_filter_on_metadata_keys(project, route):
    seed(project)
    gold = cond("stringObject", "metadata", "=", "gold", key="tier")
    assert ids(project.get(route, params={"filter": fltr(gold)})) == ["s1"]
    tiers = cond("categoryOptions", "metadata", "any of", ["gold", "silver"], key="tier")
    assert ids(project.get(route, params={"filter": fltr(tiers)})) == ["g1", "s1"]
    big_n = cond("numberObject", "metadata", ">=", 3, key="n")
    assert ids(project.get(route, params={"filter": fltr(big_n)})) == ["s1"]


@pytest.mark.parametrize("route", [V1, V2])
def test_json_filter_on_trace_level_columns(project, route):
    seed(project)
    cases = [
        (cond("string", "userId", "=", "bob"), ["g2", "s2"]),
        (cond("string", "userId", "does not contain", "ali"), ["g2", "s2"]),
        (cond("string", "traceName", "starts with", "check"), ["e1", "g1", "s1"]),
        (cond("string", "sessionId", "=", "sess-1"), ["e1", "g1", "s1"]),
        (cond("null", "sessionId", "is null"), ["g2", "s2"]),
        (cond("stringOptions", "traceEnvironment", "any of", ["staging"]), ["g2", "s2"]),
        (cond("arrayOptions", "traceTags", "any of", ["web"]), ["e1", "g1", "s1"]),
        (cond("arrayOptions", "traceTags", "all of", ["prod", "web"]), ["e1", "g1", "s1"]),
        (cond("arrayOptions", "tags", "none of", ["prod"]), ["g2", "s2"]),
    ]
    for condition, expected in cases:
        assert ids(project.get(route, params={"filter": fltr(condition)})) == expected, condition


def test_json_filter_on_observation_columns_and_metrics(project):
    seed(project)
    cases = [
        (cond("number", "latency", ">=", 5), ["s1"]),
        (cond("number", "timeToFirstToken", "<", 1), ["g1"]),
        (cond("number", "totalTokens", "=", 30), ["g1"]),
        (cond("number", "tokensPerSecond", "=", 10), ["g1"]),
        (cond("string", "model", "contains", "GPT"), ["g1"]),
        (cond("string", "statusMessage", "=", "boom"), ["e1"]),
        (cond("number", "promptVersion", "=", 2), ["g1"]),
        (cond("datetime", "startTime", ">", ts(20)), ["g2"]),
        (cond("stringOptions", "level", "none of", ["DEFAULT"]), ["e1", "g1"]),
        (cond("null", "endTime", "is null"), ["e1"]),
    ]
    for condition, expected in cases:
        assert ids(project.get(V1, params={"filter": fltr(condition)})) == expected, condition


@pytest.mark.parametrize("route", [V1, V2])
def test_json_filter_wins_over_the_simple_parameter_on_its_column(project, route):
    seed(project)
    by_name = cond("string", "name", "=", "oops")
    assert ids(project.get(route, params={"name": "handle", "filter": fltr(by_name)})) == ["e1"]
    # Simple parameters on other columns still apply next to the filter.
    handle = cond("string", "name", "=", "handle")
    params = {"environment": "staging", "filter": fltr(handle)}
    assert ids(project.get(route, params=params)) == ["s2"]
    session = cond("string", "sessionId", "=", "sess-1")
    params = {"fromStartTime": ts(1), "filter": fltr(session)}
    assert ids(project.get(route, params=params)) == ["e1", "g1"]


@pytest.mark.parametrize("route", [V1, V2])
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"level": "LOUD"}, "level"),
        ({"fromStartTime": "yesterday"}, "fromStartTime"),
        ({"toStartTime": "2026-13-01"}, "toStartTime"),
        ({"filter": "not json"}, "filter"),
        ({"filter": '{"column": "name"}'}, "filter"),
        ({"filter": fltr(cond("string", "colour", "=", "x"))}, "filter[0].column"),
        ({"filter": fltr(cond("string", "name", "~", "x"))}, "filter[0].operator"),
        ({"filter": fltr(cond("stringObject", "metadata", "=", "x"))}, "filter[0].key"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_parameter(project, route, params, name):
    assert_bad_param(project.get(route, params=params), name)


def test_v1_bad_page_is_rejected(project):
    assert_bad_param(project.get(V1, params={"page": 0}), "page")


def test_another_projects_observations_never_appear(project, other_project):
    seed(project)
    seed(other_project)  # the same ids, in another project
    seed(other_project, prefix="x-")
    assert ids(project.get(V1)) == NEWEST_FIRST
    assert project.get(V1).json()["meta"]["totalItems"] == 5
    assert ids(project.get(V2)) == NEWEST_FIRST
    assert ids(project.get(V1, params={"userId": "alice"})) == ["e1", "g1", "s1"]
    tags = cond("arrayOptions", "traceTags", "any of", ["web"])
    assert ids(project.get(V2, params={"filter": fltr(tags)})) == ["e1", "g1", "s1"]
    r = project.get(f"{V1}/x-g1")
    assert r.status_code == 404
    assert_response_matches(r)
    assert all(o["projectId"] == project.id for o in project.get(V2).json()["data"])


# --- one observation -------------------------------------------------------------------------


def test_get_returns_one_observation_view(project):
    seed(project)
    r = project.get(f"{V1}/g1")
    assert r.status_code == 200, r.text
    assert_response_matches(r)
    body = r.json()
    assert body["id"] == "g1" and body["traceId"] == "t1" and body["projectId"] == project.id
    assert body["type"] == "GENERATION" and body["parentObservationId"] == "s1"
    assert body["model"] == "gpt-4o" and body["modelParameters"] == {"temperature": 0.2}
    assert body["startTime"] == ts(1) and body["endTime"] == ts(3)
    assert body["metadata"] == {"tier": "silver"}
    assert body["usage"]["input"] == 10 and body["usage"]["output"] == 20


def test_get_unknown_observation_is_404(project):
    r = project.get(f"{V1}/{new_id()}")
    assert r.status_code == 404
    assert_response_matches(r)
    assert r.json()["message"] == "Observation not found"


# --- v2 --------------------------------------------------------------------------------------


def test_v2_returns_core_and_basic_fields_by_default(project):
    seed(project)
    r = project.get(V2)
    assert ids(r) == NEWEST_FIRST
    data = {o["id"]: o for o in r.json()["data"]}
    assert all(set(o) == ALWAYS | BASIC for o in data.values())
    s1, g1 = data["s1"], data["g1"]
    assert s1["isRootObservation"] is True and g1["isRootObservation"] is False
    assert g1["userId"] == "alice" and g1["sessionId"] == "sess-1"
    assert g1["level"] == "WARNING" and g1["version"] == "v2"
    assert data["g2"]["environment"] == "staging" and data["g2"]["sessionId"] is None
    assert r.json()["meta"].get("cursor") is None


def test_v2_fields_selects_the_groups_returned(project):
    seed(project)
    r = project.get(V2, params={"fields": "io,metrics", "traceId": "t1"})
    assert ids(r) == ["e1", "g1", "s1"]
    g1 = next(o for o in r.json()["data"] if o["id"] == "g1")
    assert set(g1) == ALWAYS | {"input", "output", "latency", "timeToFirstToken"}
    # I/O comes back as raw strings: a string as sent, anything else as its JSON text.
    assert json.loads(g1["input"]) == {"messages": [{"role": "user", "content": "Hi"}]}
    assert g1["output"] == "hi there"
    assert g1["latency"] == 2.0 and g1["timeToFirstToken"] == 0.5


def test_v2_every_group_has_its_fields(project):
    seed(project)
    groups = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
    r = project.get(V2, params={"fields": groups})
    assert ids(r) == NEWEST_FIRST
    g1 = next(o for o in r.json()["data"] if o["id"] == "g1")
    assert set(g1) == ALWAYS | BASIC | {
        "completionStartTime",
        "createdAt",
        "updatedAt",
        "input",
        "output",
        "metadata",
        "providedModelName",
        "model",  # the same value: the Python SDK 5.x parses the provided model as `model`
        "internalModelId",
        "modelParameters",
        "usageDetails",
        "costDetails",
        "totalCost",
        "usagePricingTierName",
        "promptId",
        "promptName",
        "promptVersion",
        "latency",
        "timeToFirstToken",
        "tags",
        "release",
        "traceName",
    }
    assert g1["completionStartTime"] == ts(1.5)
    assert g1["providedModelName"] == "gpt-4o" and g1["modelParameters"] == {"temperature": 0.2}
    assert g1["usageDetails"] == {"input": 10, "output": 20, "total": 30}
    assert g1["promptName"] == "greeter" and g1["promptVersion"] == 2
    assert g1["tags"] == ["prod", "web"] and g1["release"] == "1.0"
    assert g1["traceName"] == "checkout"
    assert g1["metadata"] == {"tier": "silver"}


def test_v2_unknown_field_group_is_rejected(project):
    assert_bad_param(project.get(V2, params={"fields": "core,everything"}), "fields")


def test_v2_long_metadata_values_are_cut_unless_expanded(project):
    long_text = "x" * 250
    project.ingest(
        event("trace-create", {"id": "t"}),
        event(
            "span-create",
            {"id": "s", "traceId": "t", "metadata": {"a": long_text, "b": long_text, "c": "short"}},
        ),
    )
    r = project.get(V2, params={"fields": "metadata"})
    assert ids(r) == ["s"]
    assert r.json()["data"][0]["metadata"] == {"a": "x" * 200, "b": "x" * 200, "c": "short"}
    r = project.get(V2, params={"fields": "metadata", "expandMetadata": "b"})
    assert ids(r) == ["s"]
    assert r.json()["data"][0]["metadata"] == {"a": "x" * 200, "b": long_text, "c": "short"}


def test_v2_cursor_walks_every_observation_once(project):
    tid = new_id()
    events = [event("trace-create", {"id": tid})]
    # Several observations share a start time: the id breaks the tie across page boundaries.
    for i in range(11):
        events.append(
            event("span-create", {"id": f"o{i:02d}", "traceId": tid, "startTime": ts(i // 4)})
        )
    assert project.ingest(*events).json()["errors"] == []
    expected = [o["id"] for o in project.get(V1).json()["data"]]
    assert len(expected) == 11

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = project.get(V2, params=params)
        page = ids(r)
        seen += page
        pages += 1
        cursor = r.json()["meta"].get("cursor")
        if cursor is None:
            break
        assert len(page) == 3
    assert pages == 4
    assert seen == expected
    assert len(set(seen)) == 11


def test_v2_cursor_keeps_the_filters_of_the_walk(project):
    seed(project)
    first = project.get(V2, params={"limit": 1, "userId": "alice"})
    assert ids(first) == ["e1"]
    cursor = first.json()["meta"]["cursor"]
    rest = project.get(V2, params={"limit": 5, "userId": "alice", "cursor": cursor})
    assert ids(rest) == ["g1", "s1"]
    assert rest.json()["meta"].get("cursor") is None


def test_v2_limit_defaults_to_50(project):
    tid = new_id()
    events = [event("trace-create", {"id": tid})]
    events += [event("event-create", {"id": f"e{i:02d}", "traceId": tid}) for i in range(51)]
    assert project.ingest(*events).json()["errors"] == []
    r = project.get(V2)
    assert len(ids(r)) == 50
    assert r.json()["meta"]["cursor"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(b'{"lastStartTime": "soon", "lastId": "x"}').decode(),
        base64.b64encode(b'{"lastStartTime": 5, "lastId": "x"}').decode(),
    ],
)
def test_v2_bad_cursor_is_rejected(project, cursor):
    assert_bad_param(project.get(V2, params={"cursor": cursor}), "cursor")


def test_v2_parse_io_as_json_true_is_rejected(project):
    seed(project)
    assert_bad_param(project.get(V2, params={"parseIoAsJson": "true"}), "parseIoAsJson")
    assert ids(project.get(V2, params={"parseIoAsJson": "false"})) == NEWEST_FIRST


def test_v2_session_root_and_parent_parameters(project):
    seed(project)
    assert ids(project.get(V2, params={"sessionId": "sess-1"})) == ["e1", "g1", "s1"]
    assert ids(project.get(V2, params={"isRootObservation": "true"})) == ["s2", "s1"]
    assert ids(project.get(V2, params={"isRootObservation": "false"})) == ["g2", "e1", "g1"]
    assert ids(project.get(V2, params={"parentObservationId": ""})) == ["s2", "s1"]
    assert ids(project.get(V2, params={"parentObservationId": "s2"})) == ["g2"]
    root = cond("boolean", "isRootObservation", "=", True)
    assert ids(project.get(V2, params={"filter": fltr(root), "userId": "bob"})) == ["s2"]


def test_v2_input_output_search_needs_an_exact_or_matches_condition(project):
    seed(project)
    contains = cond("string", "output", "contains", "there")
    assert_bad_param(project.get(V2, params={"filter": fltr(contains)}), "filter")
    matches = cond("string", "output", "matches", "HI THERE")
    assert ids(project.get(V2, params={"filter": fltr(matches)})) == ["g1"]
    exact = cond("string", "output", "=", "hi there")
    assert ids(project.get(V2, params={"filter": fltr(exact, contains)})) == ["g1"]
    in_input = cond("string", "input", "matches", '"role":"user"')
    assert ids(project.get(V2, params={"filter": fltr(in_input)})) == ["g1"]
