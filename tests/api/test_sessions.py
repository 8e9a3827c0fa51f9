"""GET /api/public/sessions (pages, time window, environment) and /sessions/{id} with traces."""

from __future__ import annotations

import time

import pytest

from tests.contract import assert_response_matches
from tests.factories import event, ts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LIST = "/api/public/sessions"


def create_sessions(project, *session_ids: str, environment: str = "default") -> None:
    """One trace per session, each in its own request so the sessions' creation times differ."""
    for sid in session_ids:
        body = {"id": f"{sid}-trace", "sessionId": sid, "environment": environment}
        r = project.ingest(event("trace-create", body))
        assert r.status_code == 207 and r.json()["errors"] == [], r.text
        time.sleep(0.01)


def listed(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert_response_matches(response)
    return [s["id"] for s in response.json()["data"]]


def test_list_returns_sessions_newest_first_with_page_meta(project):
    create_sessions(project, "a", "b", "c")
    r = project.get(LIST)
    assert listed(r) == ["c", "b", "a"]
    assert r.json()["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}
    first = r.json()["data"][0]
    assert first["projectId"] == project.id and first["environment"] == "default"


def test_pages_split_the_list_by_limit(project):
    create_sessions(project, "a", "b", "c")
    pages = []
    for page in (1, 2, 3):
        r = project.get(LIST, params={"page": page, "limit": 2})
        pages.append(listed(r))
        assert r.json()["meta"] == {"page": page, "limit": 2, "totalItems": 3, "totalPages": 2}
    assert pages == [["c", "b"], ["a"], []]


def test_time_window_filters_on_creation_time(project):
    create_sessions(project, "a", "b", "c")
    created = {s["id"]: s["createdAt"] for s in project.get(LIST).json()["data"]}
    assert listed(project.get(LIST, params={"fromTimestamp": created["b"]})) == ["c", "b"]
    assert listed(project.get(LIST, params={"toTimestamp": created["b"]})) == ["a"]
    window = {"fromTimestamp": created["b"], "toTimestamp": created["c"]}
    assert listed(project.get(LIST, params=window)) == ["b"]
    assert project.get(LIST, params=window).json()["meta"]["totalItems"] == 1


def test_environment_filter_keeps_sessions_of_the_listed_environments(project):
    create_sessions(project, "a")
    create_sessions(project, "b", environment="staging")
    create_sessions(project, "c", environment="production")
    assert listed(project.get(LIST, params={"environment": "staging"})) == ["b"]
    both = {"environment": ["staging", "default"]}
    assert listed(project.get(LIST, params=both)) == ["b", "a"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"page": 0}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"fromTimestamp": "last week"}, "fromTimestamp"),
        ({"toTimestamp": "2026-02-30T00:00:00Z"}, "toTimestamp"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_parameter(project, params, name):
    r = project.get(LIST, params=params)
    assert r.status_code == 400, r.text
    assert_response_matches(r)
    assert name in r.json()["message"]


def test_get_returns_the_session_with_its_traces(project):
    r = project.ingest(
        event("trace-create", {"id": "t2", "sessionId": "s", "name": "second", "timestamp": ts(5)}),
        event(
            "trace-create",
            {"id": "t1", "sessionId": "s", "name": "first", "userId": "u", "timestamp": ts(0)},
        ),
        event("trace-create", {"id": "elsewhere", "sessionId": "other"}),
    )
    assert r.json()["errors"] == []
    r = project.get(f"{LIST}/s")
    assert r.status_code == 200, r.text
    assert_response_matches(r)
    body = r.json()
    assert body["id"] == "s" and body["projectId"] == project.id
    assert body["environment"] == "default" and body["createdAt"]
    assert [t["id"] for t in body["traces"]] == ["t1", "t2"]
    first = body["traces"][0]
    assert first["name"] == "first" and first["userId"] == "u" and first["sessionId"] == "s"
    assert first["timestamp"] == ts(0) and first["tags"] == []


def test_get_unknown_session_is_404(project):
    r = project.get(f"{LIST}/missing")
    assert r.status_code == 404
    assert_response_matches(r)
    assert r.json()["message"] == "Session not found"


def test_another_projects_sessions_never_appear(project, other_project):
    create_sessions(project, "mine")
    create_sessions(other_project, "theirs")
    # The same session id in both projects: each sees only its own traces.
    project.ingest(event("trace-create", {"id": "p-trace", "sessionId": "shared"}))
    other_project.ingest(event("trace-create", {"id": "o-trace", "sessionId": "shared"}))
    r = project.get(LIST)
    assert listed(r) == ["shared", "mine"]
    assert r.json()["meta"]["totalItems"] == 2
    r = project.get(f"{LIST}/shared")
    assert r.status_code == 200
    assert_response_matches(r)
    assert [t["id"] for t in r.json()["traces"]] == ["p-trace"]
    r = project.get(f"{LIST}/theirs")
    assert r.status_code == 404
    assert_response_matches(r)
