"""Comments: POST /api/public/comments, GET /api/public/comments[/{commentId}].

Every reply is checked against the OpenAPI contract.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts
from tracehouse.store.schema import comments

BASE = "/api/public/comments"


def _checked(response: httpx.Response) -> httpx.Response:
    assert_response_matches(response)
    return response


def _bad_request(response: httpx.Response, field: str) -> None:
    _checked(response)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"], response.text


def _objects(project) -> dict[str, str]:
    """A trace (in a session) with an observation, and a prompt version: their ids by type."""
    trace_id, obs_id, session_id = new_id(), new_id(), f"session-{new_id()}"
    r = project.ingest(
        event("trace-create", {"id": trace_id, "sessionId": session_id, "timestamp": ts(0)}),
        event("span-create", {"id": obs_id, "traceId": trace_id, "startTime": ts(1)}),
    )
    assert r.status_code == 207 and r.json()["errors"] == [], r.text
    r = project.post(
        "/api/public/v2/prompts",
        json={"name": f"p-{new_id()}", "type": "text", "prompt": "Hi {{x}}"},
    )
    assert r.status_code == 200, r.text
    return {
        "TRACE": trace_id,
        "OBSERVATION": obs_id,
        "SESSION": session_id,
        "PROMPT": r.json()["id"],
    }


def _create(project, **body: Any) -> str:
    payload = {"projectId": project.id, **body}
    r = _checked(project.post(BASE, json=payload))
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _get(project, comment_id: str) -> dict[str, Any]:
    r = _checked(project.get(f"{BASE}/{comment_id}"))
    assert r.status_code == 200, r.text
    return r.json()


def _list(project, **params: Any) -> dict[str, Any]:
    r = _checked(project.get(BASE, params=params))
    assert r.status_code == 200, r.text
    return r.json()


def _count_rows(project) -> int:
    engine = project.http.app.state.services.engine
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(comments)
                .where(comments.c.project_id == project.id)
            ).scalar_one()
        )


# -- create and read back ----------------------------------------------------------------------


@pytest.mark.parametrize("object_type", ["TRACE", "OBSERVATION", "SESSION", "PROMPT"])
def test_comment_on_each_object_type(project, object_type: str) -> None:
    object_id = _objects(project)[object_type]
    comment_id = _create(
        project,
        objectType=object_type,
        objectId=object_id,
        content="Looks **wrong** here",
        authorUserId="user-1",
    )
    got = _get(project, comment_id)
    assert got["id"] == comment_id
    assert got["projectId"] == project.id
    assert (got["objectType"], got["objectId"]) == (object_type, object_id)
    assert got["content"] == "Looks **wrong** here"
    assert got["authorUserId"] == "user-1"
    assert got["createdAt"] == got["updatedAt"]
    listed = _list(project, objectType=object_type, objectId=object_id)
    assert [c["id"] for c in listed["data"]] == [comment_id]


def test_author_is_optional_and_object_type_case_insensitive(project) -> None:
    trace_id = _objects(project)["TRACE"]
    comment_id = _create(project, objectType="trace", objectId=trace_id, content="  padded  ")
    got = _get(project, comment_id)
    assert got["objectType"] == "TRACE"
    assert got["authorUserId"] is None
    assert got["content"] == "padded"  # trimmed, as Langfuse does


def test_content_limit_is_5000_characters(project) -> None:
    trace_id = _objects(project)["TRACE"]
    comment_id = _create(project, objectType="TRACE", objectId=trace_id, content="x" * 5000)
    assert len(_get(project, comment_id)["content"]) == 5000
    r = project.post(
        BASE,
        json={
            "projectId": project.id,
            "objectType": "TRACE",
            "objectId": trace_id,
            "content": "x" * 5001,
        },
    )
    _bad_request(r, "content")
    assert "5000" in r.json()["message"]
    assert _count_rows(project) == 1


# -- list --------------------------------------------------------------------------------------


def test_list_filters_newest_first_and_pages(project) -> None:
    ids = _objects(project)
    first = _create(
        project, objectType="TRACE", objectId=ids["TRACE"], content="1", authorUserId="a"
    )
    second = _create(
        project, objectType="TRACE", objectId=ids["TRACE"], content="2", authorUserId="b"
    )
    third = _create(
        project,
        objectType="OBSERVATION",
        objectId=ids["OBSERVATION"],
        content="3",
        authorUserId="a",
    )

    everything = _list(project)
    assert [c["id"] for c in everything["data"]] == [third, second, first]
    assert everything["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}

    page2 = _list(project, page=2, limit=2)
    assert [c["id"] for c in page2["data"]] == [first]
    assert page2["meta"] == {"page": 2, "limit": 2, "totalItems": 3, "totalPages": 2}

    assert [c["id"] for c in _list(project, objectType="TRACE")["data"]] == [second, first]
    assert [c["id"] for c in _list(project, authorUserId="a")["data"]] == [third, first]
    by_object = _list(project, objectType="OBSERVATION", objectId=ids["OBSERVATION"])
    assert [c["id"] for c in by_object["data"]] == [third]
    assert _list(project, objectType="SESSION")["data"] == []
    assert _list(project, objectType="TRACE", objectId="nope")["meta"]["totalItems"] == 0


def test_list_rejects_bad_parameters(project) -> None:
    _bad_request(project.get(BASE, params={"objectId": "x"}), "objectId")
    _bad_request(project.get(BASE, params={"objectType": "DATASET"}), "objectType")
    _bad_request(project.get(BASE, params={"page": 0}), "page")
    _bad_request(project.get(BASE, params={"limit": 0}), "limit")


# -- bad input and missing objects -------------------------------------------------------------


def test_create_rejects_bad_bodies(project) -> None:
    trace_id = _objects(project)["TRACE"]
    good = {"projectId": project.id, "objectType": "TRACE", "objectId": trace_id, "content": "c"}
    for field in ("objectType", "objectId", "content", "projectId"):
        body = {k: v for k, v in good.items() if k != field}
        _bad_request(project.post(BASE, json=body), field)
    _bad_request(project.post(BASE, json={**good, "objectType": "DATASET"}), "objectType")
    _bad_request(project.post(BASE, json={**good, "content": "   "}), "content")
    _bad_request(project.post(BASE, json={**good, "content": 42}), "content")
    _bad_request(project.post(BASE, json={**good, "objectId": ["x"]}), "objectId")
    _bad_request(project.post(BASE, json={**good, "authorUserId": 7}), "authorUserId")
    _bad_request(project.post(BASE, json=[good]), "body")
    _bad_request(project.post(BASE, content=b"{not json"), "body")
    assert _count_rows(project) == 0


def test_project_id_must_be_the_callers(project, other_project) -> None:
    trace_id = _objects(project)["TRACE"]
    r = _checked(
        project.post(
            BASE,
            json={
                "projectId": other_project.id,
                "objectType": "TRACE",
                "objectId": trace_id,
                "content": "c",
            },
        )
    )
    assert r.status_code == 403, r.text
    assert "projectId" in r.json()["message"]
    assert _count_rows(project) == 0 and _count_rows(other_project) == 0


@pytest.mark.parametrize("object_type", ["TRACE", "OBSERVATION", "SESSION", "PROMPT"])
def test_object_must_exist_in_the_project(project, other_project, object_type: str) -> None:
    theirs = _objects(other_project)[object_type]
    for object_id in ("does-not-exist", theirs):
        r = _checked(
            project.post(
                BASE,
                json={
                    "projectId": project.id,
                    "objectType": object_type,
                    "objectId": object_id,
                    "content": "c",
                },
            )
        )
        assert r.status_code == 404, r.text
        assert object_id in r.json()["message"]
    assert _count_rows(project) == 0


def test_comments_are_isolated_between_projects(project, other_project) -> None:
    trace_id = _objects(project)["TRACE"]
    mine = _create(project, objectType="TRACE", objectId=trace_id, content="mine")
    r = _checked(other_project.get(f"{BASE}/{mine}"))
    assert r.status_code == 404, r.text
    assert _list(other_project)["data"] == []
    assert _list(other_project, objectType="TRACE", objectId=trace_id)["data"] == []
    r = _checked(project.get(f"{BASE}/{new_id()}"))
    assert r.status_code == 404, r.text


def test_needs_a_secret_key(project) -> None:
    r = project.http.get(BASE, headers={"Authorization": f"Bearer {project.public_key}"})
    assert r.status_code == 403, r.text
    assert project.http.get(BASE).status_code == 401
