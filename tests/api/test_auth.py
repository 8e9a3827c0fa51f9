"""Authentication: Basic pk:sk on every public route but health/ready; clear 401s that reveal nothing."""

from __future__ import annotations

import base64

from tests.factories import event, new_id


def _basic(pk: str, sk: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()}


def test_health_needs_no_credentials(app_client):
    r = app_client.get("/api/public/health")
    assert r.status_code == 200
    assert r.json()["status"] == "OK"
    assert r.json()["version"]


def test_ready_is_200_when_the_store_is_reachable(app_client):
    assert app_client.get("/api/public/ready").status_code == 200


def test_missing_credentials_is_a_401_json(app_client):
    r = app_client.get("/api/public/traces")
    assert r.status_code == 401
    assert r.json()["error"] == "UnauthorizedError"
    assert r.json()["message"]


def test_wrong_secret_and_unknown_key_get_the_same_answer(app_client, project):
    wrong_secret = app_client.get(
        "/api/public/traces", headers=_basic(project.public_key, "sk-lf-wrong")
    )
    unknown_key = app_client.get(
        "/api/public/traces", headers=_basic("pk-lf-nobody", "sk-lf-wrong")
    )
    assert wrong_secret.status_code == unknown_key.status_code == 401
    assert wrong_secret.json() == unknown_key.json()


def test_garbage_authorization_headers_are_401(app_client):
    for header in (
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest abc",
        "Bearer",
    ):
        r = app_client.get("/api/public/traces", headers={"Authorization": header})
        assert r.status_code == 401, header


def test_projects_returns_the_keys_project(project):
    r = project.get("/api/public/projects")
    assert r.status_code == 200
    (item,) = r.json()["data"]
    assert item["id"] == project.id
    assert item["organization"]["id"] == "test-org"


def test_public_key_alone_may_write_scores_only(app_client, project):
    bearer = {"Authorization": f"Bearer {project.public_key}"}
    tid = new_id()
    project.ingest(event("trace-create", {"id": tid}))
    score = event("score-create", {"id": new_id(), "traceId": tid, "name": "thumbs", "value": 1})
    trace = event("trace-create", {"id": new_id(), "name": "sneaky"})
    r = app_client.post("/api/public/ingestion", json={"batch": [score, trace]}, headers=bearer)
    assert r.status_code == 207
    assert [s["id"] for s in r.json()["successes"]] == [score["id"]]
    (err,) = r.json()["errors"]
    assert err["id"] == trace["id"] and err["status"] == 401
    assert app_client.get("/api/public/traces", headers=bearer).status_code == 403
    assert project.get("/api/public/traces").json()["meta"]["totalItems"] == 1


def test_unknown_route_is_a_json_404(project):
    r = project.get("/api/public/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"] == "LangfuseNotFoundError"


def test_wrong_method_is_a_json_405(project):
    r = project.request("PUT", "/api/public/ingestion", json={})
    assert r.status_code == 405
    assert r.json()["error"] == "MethodNotAllowedError"
