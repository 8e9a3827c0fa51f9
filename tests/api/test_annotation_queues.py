"""Annotation queues: /api/public/annotation-queues, its items and assignments, and tracehouse's
DELETE /api/public/annotation-queues/{queueId}.

Every reply of a route in Langfuse's spec is checked against the OpenAPI contract.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts
from tracehouse.store import projects as project_store
from tracehouse.store.schema import (
    annotation_queue_assignments,
    annotation_queue_items,
    annotation_queues,
    score_configs,
)

BASE = "/api/public/annotation-queues"


# -- helpers -----------------------------------------------------------------------------------


def _checked(response: httpx.Response) -> httpx.Response:
    assert_response_matches(response)
    return response


def _ok(response: httpx.Response) -> dict[str, Any]:
    _checked(response)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _bad_request(response: httpx.Response, field: str) -> None:
    _checked(response)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"], response.text


def _not_found(response: httpx.Response) -> None:
    _checked(response)
    assert response.status_code == 404, response.text


def _engine(project) -> Any:
    return project.http.app.state.services.engine


def _score_config(project, name: str = "quality") -> str:
    """A NUMERIC score config (0..1) of the project: through the score-configs API when the
    server has it, else written straight into the table."""
    body = {"name": name, "dataType": "NUMERIC", "minValue": 0, "maxValue": 1}
    r = project.post("/api/public/score-configs", json=body)
    if r.status_code == 200:
        return str(r.json()["id"])
    assert r.status_code in (404, 405), r.text  # no score-configs route in this build
    config_id = new_id()
    now = datetime.now(UTC)
    with _engine(project).begin() as conn:
        conn.execute(
            insert(score_configs).values(
                project_id=project.id,
                id=config_id,
                name=name,
                data_type="NUMERIC",
                is_archived=False,
                min_value=0.0,
                max_value=1.0,
                categories=None,
                description=None,
                created_at=now,
                updated_at=now,
            )
        )
    return config_id


def _queue(project, name: str | None = None, **body: Any) -> dict[str, Any]:
    if "scoreConfigIds" not in body:
        body["scoreConfigIds"] = [_score_config(project)]
    return _ok(project.post(BASE, json={"name": name or f"queue-{new_id()}", **body}))


def _objects(project) -> dict[str, str]:
    """A trace in a session with one observation: their ids by AnnotationQueueObjectType."""
    trace_id, obs_id, session_id = new_id(), new_id(), f"session-{new_id()}"
    r = project.ingest(
        event("trace-create", {"id": trace_id, "sessionId": session_id, "timestamp": ts(0)}),
        event("span-create", {"id": obs_id, "traceId": trace_id, "startTime": ts(1)}),
    )
    assert r.status_code == 207 and r.json()["errors"] == [], r.text
    return {"TRACE": trace_id, "OBSERVATION": obs_id, "SESSION": session_id}


def _item(project, queue_id: str, object_type: str, object_id: str, **body: Any) -> dict[str, Any]:
    return _ok(
        project.post(
            f"{BASE}/{queue_id}/items",
            json={"objectType": object_type, "objectId": object_id, **body},
        )
    )


def _patch(project, queue_id: str, item_id: str, body: Any) -> httpx.Response:
    return _checked(project.request("PATCH", f"{BASE}/{queue_id}/items/{item_id}", json=body))


def _user(project, org_id: str = "test-org") -> str:
    """A user who is a member of ``org_id`` (the test projects' organization by default)."""
    user_id = f"user-{uuid.uuid4().hex[:10]}"
    with _engine(project).begin() as conn:
        project_store.ensure_organization(conn, org_id, org_id)
        project_store.ensure_user(
            conn, user_id=user_id, email=f"{user_id}@example.com", name=user_id, password_hash=None
        )
        project_store.ensure_membership(conn, org_id, user_id, "MEMBER")
    return user_id


def _rows(project, table: Any, queue_id: str) -> int:
    column = table.c.id if table is annotation_queues else table.c.queue_id
    with _engine(project).connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.project_id == project.id, column == queue_id)
            ).scalar_one()
        )


# -- queues ------------------------------------------------------------------------------------


def test_create_get_and_list_queues(project) -> None:
    config_a, config_b = _score_config(project, "a"), _score_config(project, "b")
    first = _queue(project, "first", scoreConfigIds=[config_a])
    second = _queue(
        project, "second", description="hard cases", scoreConfigIds=[config_b, config_a, config_b]
    )
    assert first["name"] == "first" and first["description"] is None
    assert first["scoreConfigIds"] == [config_a]
    assert second["description"] == "hard cases"
    assert second["scoreConfigIds"] == [config_b, config_a]  # repeats dropped, order kept
    assert second["createdAt"] == second["updatedAt"]

    assert _ok(project.get(f"{BASE}/{first['id']}")) == first
    listed = _ok(project.get(BASE))
    assert [q["id"] for q in listed["data"]] == [second["id"], first["id"]]
    assert listed["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    paged = _ok(project.get(BASE, params={"page": 2, "limit": 1}))
    assert [q["id"] for q in paged["data"]] == [first["id"]]
    assert paged["meta"] == {"page": 2, "limit": 1, "totalItems": 2, "totalPages": 2}
    _bad_request(project.get(BASE, params={"limit": 0}), "limit")


def test_create_queue_rejects_bad_bodies(project, other_project) -> None:
    config = _score_config(project)
    theirs = _score_config(other_project)
    good = {"name": "q", "scoreConfigIds": [config]}
    _bad_request(project.post(BASE, json={"scoreConfigIds": [config]}), "name")
    _bad_request(project.post(BASE, json={**good, "name": "  "}), "name")
    _bad_request(project.post(BASE, json={**good, "name": 3}), "name")
    _bad_request(project.post(BASE, json={**good, "description": ["x"]}), "description")
    _bad_request(project.post(BASE, json={"name": "q"}), "scoreConfigIds")
    _bad_request(project.post(BASE, json={**good, "scoreConfigIds": []}), "scoreConfigIds")
    _bad_request(project.post(BASE, json={**good, "scoreConfigIds": config}), "scoreConfigIds")
    _bad_request(project.post(BASE, json={**good, "scoreConfigIds": [1]}), "scoreConfigIds")
    missing = project.post(BASE, json={**good, "scoreConfigIds": [config, "nope"]})
    _bad_request(missing, "scoreConfigIds")
    assert "nope" in missing.json()["message"]
    _bad_request(project.post(BASE, json={**good, "scoreConfigIds": [theirs]}), "scoreConfigIds")
    _bad_request(project.post(BASE, json=[good]), "body")
    assert _ok(project.get(BASE))["data"] == []


def test_queue_names_are_unique_per_project(project, other_project) -> None:
    _queue(project, "reviews")
    _bad_request(project.post(BASE, json={"name": "reviews", "scoreConfigIds": [
        _score_config(project)]}), "name")  # fmt: skip
    assert _ok(project.get(BASE))["meta"]["totalItems"] == 1
    _queue(other_project, "reviews")  # another project may use the name


def test_other_projects_queues_are_not_found(project, other_project) -> None:
    theirs = _queue(other_project)
    obj = _objects(other_project)
    item = _item(other_project, theirs["id"], "TRACE", obj["TRACE"])
    user = _user(project)
    q, i = theirs["id"], item["id"]
    _not_found(project.get(f"{BASE}/{q}"))
    _not_found(project.get(f"{BASE}/{q}/items"))
    _not_found(project.post(f"{BASE}/{q}/items", json={"objectType": "TRACE", "objectId": "x"}))
    _not_found(project.get(f"{BASE}/{q}/items/{i}"))
    _not_found(_patch(project, q, i, {"status": "COMPLETED"}))
    _not_found(project.delete(f"{BASE}/{q}/items/{i}"))
    _not_found(project.post(f"{BASE}/{q}/assignments", json={"userId": user}))
    _not_found(project.request("DELETE", f"{BASE}/{q}/assignments", json={"userId": user}))
    r = project.delete(f"{BASE}/{q}")  # a tracehouse route: not in Langfuse's spec
    assert r.status_code == 404, r.text
    assert _ok(project.get(BASE))["data"] == []
    # nothing of theirs changed
    again = _ok(other_project.get(f"{BASE}/{q}/items/{i}"))
    assert again["status"] == "PENDING"
    assert _rows(other_project, annotation_queue_assignments, q) == 0


# -- items -------------------------------------------------------------------------------------


@pytest.mark.parametrize("object_type", ["TRACE", "OBSERVATION", "SESSION"])
def test_item_on_each_object_type(project, object_type: str) -> None:
    queue = _queue(project)
    object_id = _objects(project)[object_type]
    item = _item(project, queue["id"], object_type, object_id)
    assert item["queueId"] == queue["id"]
    assert (item["objectType"], item["objectId"]) == (object_type, object_id)
    assert item["status"] == "PENDING" and item["completedAt"] is None
    assert _ok(project.get(f"{BASE}/{queue['id']}/items/{item['id']}")) == item


def test_item_created_completed_has_a_completion_time(project) -> None:
    queue = _queue(project)
    item = _item(project, queue["id"], "TRACE", _objects(project)["TRACE"], status="COMPLETED")
    assert item["status"] == "COMPLETED"
    assert item["completedAt"] == item["createdAt"]


def test_item_objects_must_exist_in_the_project(project, other_project) -> None:
    queue = _queue(project)
    theirs = _objects(other_project)
    url = f"{BASE}/{queue['id']}/items"
    for object_type, object_id in theirs.items():
        for wanted in (object_id, "does-not-exist"):
            r = project.post(url, json={"objectType": object_type, "objectId": wanted})
            _not_found(r)
            assert wanted in r.json()["message"]
    assert _rows(project, annotation_queue_items, queue["id"]) == 0


def test_create_item_rejects_bad_bodies(project) -> None:
    queue = _queue(project)
    trace_id = _objects(project)["TRACE"]
    url = f"{BASE}/{queue['id']}/items"
    good = {"objectType": "TRACE", "objectId": trace_id}
    _bad_request(project.post(url, json={"objectType": "TRACE"}), "objectId")
    _bad_request(project.post(url, json={"objectId": trace_id}), "objectType")
    _bad_request(project.post(url, json={**good, "objectType": "PROMPT"}), "objectType")
    _bad_request(project.post(url, json={**good, "status": "DONE"}), "status")
    _bad_request(project.post(url, json={**good, "objectId": 5}), "objectId")
    _bad_request(project.post(url, json="x"), "body")
    assert _rows(project, annotation_queue_items, queue["id"]) == 0


def test_list_items_filters_by_status_and_pages(project) -> None:
    queue = _queue(project)
    other_queue = _queue(project)
    ids = _objects(project)
    first = _item(project, queue["id"], "TRACE", ids["TRACE"])
    second = _item(project, queue["id"], "OBSERVATION", ids["OBSERVATION"], status="COMPLETED")
    third = _item(project, queue["id"], "SESSION", ids["SESSION"])
    _item(project, other_queue["id"], "TRACE", ids["TRACE"])
    url = f"{BASE}/{queue['id']}/items"

    everything = _ok(project.get(url))
    assert [i["id"] for i in everything["data"]] == [third["id"], second["id"], first["id"]]
    assert everything["meta"]["totalItems"] == 3
    pending = _ok(project.get(url, params={"status": "PENDING"}))
    assert [i["id"] for i in pending["data"]] == [third["id"], first["id"]]
    done = _ok(project.get(url, params={"status": "COMPLETED"}))
    assert [i["id"] for i in done["data"]] == [second["id"]]
    paged = _ok(project.get(url, params={"page": 2, "limit": 2}))
    assert [i["id"] for i in paged["data"]] == [first["id"]]
    assert paged["meta"] == {"page": 2, "limit": 2, "totalItems": 3, "totalPages": 2}
    _bad_request(project.get(url, params={"status": "DONE"}), "status")
    _bad_request(project.get(url, params={"page": 0}), "page")


def test_patch_item_completes_and_reopens(project) -> None:
    queue = _queue(project)
    item = _item(project, queue["id"], "TRACE", _objects(project)["TRACE"])
    q, i = queue["id"], item["id"]

    completed = _ok(_patch(project, q, i, {"status": "COMPLETED"}))
    assert completed["status"] == "COMPLETED"
    assert completed["completedAt"] is not None
    assert completed["updatedAt"] >= item["updatedAt"]
    again = _ok(_patch(project, q, i, {"status": "COMPLETED"}))
    assert again["completedAt"] == completed["completedAt"]  # the first completion is kept

    unchanged = _ok(_patch(project, q, i, {}))
    assert unchanged == again
    assert _ok(_patch(project, q, i, {"status": None})) == again

    reopened = _ok(_patch(project, q, i, {"status": "PENDING"}))
    assert reopened["status"] == "PENDING" and reopened["completedAt"] is None
    assert _ok(project.get(f"{BASE}/{q}/items/{i}")) == reopened

    _bad_request(_patch(project, q, i, {"status": "DONE"}), "status")
    _bad_request(_patch(project, q, i, {"objectId": "x"}), "objectId")
    _bad_request(_patch(project, q, i, ["COMPLETED"]), "body")
    _not_found(_patch(project, q, new_id(), {"status": "COMPLETED"}))


def test_item_belongs_to_its_queue(project) -> None:
    queue, other_queue = _queue(project), _queue(project)
    item = _item(project, queue["id"], "TRACE", _objects(project)["TRACE"])
    _not_found(project.get(f"{BASE}/{other_queue['id']}/items/{item['id']}"))
    _not_found(_patch(project, other_queue["id"], item["id"], {"status": "COMPLETED"}))
    _not_found(project.delete(f"{BASE}/{other_queue['id']}/items/{item['id']}"))
    assert _ok(project.get(f"{BASE}/{queue['id']}/items/{item['id']}"))["status"] == "PENDING"


def test_delete_item(project) -> None:
    queue = _queue(project)
    ids = _objects(project)
    item = _item(project, queue["id"], "TRACE", ids["TRACE"])
    kept = _item(project, queue["id"], "SESSION", ids["SESSION"])
    url = f"{BASE}/{queue['id']}/items/{item['id']}"
    assert _ok(project.delete(url)) == {
        "success": True,
        "message": "Annotation queue item deleted successfully",
    }
    _not_found(project.get(url))
    _not_found(project.delete(url))
    listed = _ok(project.get(f"{BASE}/{queue['id']}/items"))
    assert [i["id"] for i in listed["data"]] == [kept["id"]]
    # the traced object itself is untouched
    assert project.get(f"/api/public/traces/{ids['TRACE']}").status_code == 200


# -- assignments -------------------------------------------------------------------------------


def test_assign_and_unassign_a_member(project) -> None:
    queue = _queue(project)
    user = _user(project)
    url = f"{BASE}/{queue['id']}/assignments"
    expected = {"userId": user, "queueId": queue["id"], "projectId": project.id}
    assert _ok(project.post(url, json={"userId": user})) == expected
    assert _ok(project.post(url, json={"userId": user})) == expected  # twice: no change
    assert _rows(project, annotation_queue_assignments, queue["id"]) == 1

    assert _ok(project.request("DELETE", url, json={"userId": user})) == {"success": True}
    assert _rows(project, annotation_queue_assignments, queue["id"]) == 0
    # removing an assignment that is not there is a success too (as in Langfuse)
    assert _ok(project.request("DELETE", url, json={"userId": user})) == {"success": True}


def test_assignment_needs_a_member_of_the_projects_organization(project) -> None:
    queue = _queue(project)
    url = f"{BASE}/{queue['id']}/assignments"
    r = project.post(url, json={"userId": "no-such-user"})
    _not_found(r)
    assert "no-such-user" in r.json()["message"]
    outsider = _user(project, org_id=f"org-{uuid.uuid4().hex[:8]}")
    _bad_request(project.post(url, json={"userId": outsider}), "userId")
    _bad_request(project.post(url, json={}), "userId")
    _bad_request(project.post(url, json={"userId": 12}), "userId")
    _bad_request(project.request("DELETE", url, json={}), "userId")
    assert _rows(project, annotation_queue_assignments, queue["id"]) == 0


# -- deleting a queue (tracehouse addition) ----------------------------------------------------


def test_delete_queue_removes_items_and_assignments_keeps_scores(project) -> None:
    config = _score_config(project)
    queue = _queue(project, scoreConfigIds=[config])
    kept = _queue(project, scoreConfigIds=[config])
    ids = _objects(project)
    q = queue["id"]
    _item(project, q, "TRACE", ids["TRACE"])
    _item(project, q, "SESSION", ids["SESSION"])
    kept_item = _item(project, kept["id"], "TRACE", ids["TRACE"])
    user = _user(project)
    _ok(project.post(f"{BASE}/{q}/assignments", json={"userId": user}))
    _ok(project.post(f"{BASE}/{kept['id']}/assignments", json={"userId": user}))
    score = project.post(
        "/api/public/scores",
        json={
            "traceId": ids["TRACE"],
            "name": "quality",
            "value": 1,
            "dataType": "NUMERIC",
            "source": "ANNOTATION",
            "configId": config,
            "queueId": q,
        },
    )
    assert score.status_code == 200, score.text

    r = project.delete(f"{BASE}/{q}")
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "message": "Annotation queue deleted successfully"}
    assert project.delete(f"{BASE}/{q}").status_code == 404
    _not_found(project.get(f"{BASE}/{q}"))
    _not_found(project.get(f"{BASE}/{q}/items"))
    for table in (annotation_queues, annotation_queue_items, annotation_queue_assignments):
        assert _rows(project, table, q) == 0, table.name
    # the other queue is whole
    assert _ok(project.get(f"{BASE}/{kept['id']}/items/{kept_item['id']}"))["id"]
    assert _rows(project, annotation_queue_assignments, kept["id"]) == 1
    # the score keeps its queueId and reads fine
    got = _ok(project.get(f"/api/public/v2/scores/{score.json()['id']}"))
    assert got["queueId"] == q
    listed = _ok(project.get("/api/public/v2/scores", params={"queueId": q}))
    assert [s["id"] for s in listed["data"]] == [score.json()["id"]]


# -- annotating ----------------------------------------------------------------------------------


def test_annotating_then_completing_an_item(project) -> None:
    config = _score_config(project, "helpfulness")
    queue = _queue(project, scoreConfigIds=[config])
    ids = _objects(project)
    item = _item(project, queue["id"], "OBSERVATION", ids["OBSERVATION"])
    annotator = _user(project)
    _ok(project.post(f"{BASE}/{queue['id']}/assignments", json={"userId": annotator}))

    # the annotator scores the item's object on the queue's config, naming the queue
    r = project.post(
        "/api/public/scores",
        json={
            "traceId": ids["TRACE"],
            "observationId": ids["OBSERVATION"],
            "name": "helpfulness",
            "value": 0.8,
            "dataType": "NUMERIC",
            "source": "ANNOTATION",
            "configId": config,
            "queueId": queue["id"],
            "comment": "mostly right",
        },
    )
    assert r.status_code == 200, r.text
    score_id = r.json()["id"]
    completed = _ok(_patch(project, queue["id"], item["id"], {"status": "COMPLETED"}))
    assert completed["status"] == "COMPLETED" and completed["completedAt"] is not None

    scores = _ok(project.get("/api/public/v2/scores", params={"queueId": queue["id"]}))
    assert [s["id"] for s in scores["data"]] == [score_id]
    (score,) = scores["data"]
    assert score["queueId"] == queue["id"]
    assert score["configId"] == config
    assert score["source"] == "ANNOTATION"
    assert (score["traceId"], score["observationId"]) == (ids["TRACE"], ids["OBSERVATION"])
    assert score["value"] == 0.8
    done = _ok(project.get(f"{BASE}/{queue['id']}/items", params={"status": "COMPLETED"}))
    assert [i["id"] for i in done["data"]] == [item["id"]]
    assert (
        _ok(project.get(f"{BASE}/{queue['id']}/items", params={"status": "PENDING"}))["data"] == []
    )
