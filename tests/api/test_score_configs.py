"""Score configs: POST/GET /api/public/score-configs, GET/PATCH /api/public/score-configs/{id}.
Every response is checked against the OpenAPI contract. (Scores checked against their config:
tests/api/test_scores.py.)"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.contract import assert_response_matches
from tracehouse.store.score_configs import ConfigCache

URL = "/api/public/score-configs"


def _checked(response: httpx.Response) -> httpx.Response:
    assert_response_matches(response)
    return response


def _create(project, **body: Any) -> dict[str, Any]:
    r = _checked(project.post(URL, json=body))
    assert r.status_code == 200, r.text
    return r.json()


def _patch(project, config_id: str, body: Any) -> httpx.Response:
    return _checked(project.request("PATCH", f"{URL}/{config_id}", json=body))


def _get(project, config_id: str) -> httpx.Response:
    return _checked(project.get(f"{URL}/{config_id}"))


def _bad_request(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "InvalidRequestError"
    assert field in response.json()["message"], response.text


# -- create ----------------------------------------------------------------------------------


def test_numeric_config_is_created_and_read_back(project):
    created = _create(
        project, name="accuracy", dataType="NUMERIC", minValue=0, maxValue=1, description="0-1"
    )
    assert created["id"]
    assert created["projectId"] == project.id
    assert (created["name"], created["dataType"], created["isArchived"]) == (
        "accuracy",
        "NUMERIC",
        False,
    )
    assert (created["minValue"], created["maxValue"], created["categories"]) == (0, 1, None)
    assert created["description"] == "0-1"
    assert created["createdAt"] == created["updatedAt"]
    r = _get(project, created["id"])
    assert r.status_code == 200
    assert r.json() == created


def test_numeric_bounds_are_optional(project):
    created = _create(project, name="open", dataType="NUMERIC", minValue=None)
    assert (created["minValue"], created["maxValue"]) == (None, None)
    assert _create(project, name="floor", dataType="NUMERIC", minValue=-2.5)["minValue"] == -2.5
    assert _create(project, name="one", dataType="NUMERIC", minValue=3, maxValue=3)["maxValue"] == 3


def test_categorical_config_keeps_its_categories_in_order(project):
    categories = [
        {"label": "bad", "value": 0},
        {"label": "ok", "value": 1},
        {"label": "great", "value": 2.5},
    ]
    created = _create(project, name="quality", dataType="CATEGORICAL", categories=categories)
    assert created["categories"] == categories
    assert (created["minValue"], created["maxValue"]) == (None, None)


def test_boolean_config_gets_the_fixed_categories(project):
    created = _create(project, name="thumbs", dataType="BOOLEAN")
    assert created["categories"] == [{"label": "True", "value": 1}, {"label": "False", "value": 0}]


def test_text_config_has_no_categories_nor_bounds(project):
    created = _create(project, name="notes", dataType="TEXT", categories=None)
    assert (created["categories"], created["minValue"], created["maxValue"]) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataType": "NUMERIC"}, "name"),
        ({"name": "", "dataType": "NUMERIC"}, "name"),
        ({"name": 5, "dataType": "NUMERIC"}, "name"),
        ({"name": "x" * 81, "dataType": "NUMERIC"}, "name"),
        ({"name": "a/b", "dataType": "NUMERIC"}, "name"),
        ({"name": "n"}, "dataType"),
        ({"name": "n", "dataType": "PERCENT"}, "dataType"),
        ({"name": "n", "dataType": "CORRECTION"}, "dataType"),
        ({"name": "n", "dataType": "NUMERIC", "minValue": "low"}, "minValue"),
        ({"name": "n", "dataType": "NUMERIC", "maxValue": True}, "maxValue"),
        ({"name": "n", "dataType": "NUMERIC", "minValue": 2, "maxValue": 1}, "minValue"),
        ({"name": "n", "dataType": "NUMERIC", "categories": [{"label": "a", "value": 1}]}, "categories"),
        ({"name": "n", "dataType": "CATEGORICAL"}, "categories"),
        ({"name": "n", "dataType": "CATEGORICAL", "categories": []}, "categories"),
        ({"name": "n", "dataType": "CATEGORICAL", "categories": "a,b"}, "categories"),
        ({"name": "n", "dataType": "CATEGORICAL", "categories": ["a"]}, "categories[0]"),
        ({"name": "n", "dataType": "CATEGORICAL", "categories": [{"value": 1}]}, "categories[0].label"),
        ({"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "a"}]}, "categories[0].value"),
        ({"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "a", "value": "1"}]}, "categories[0].value"),
        (
            {"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "a", "value": 1}, {"label": "a", "value": 2}]},
            "categories[1].label",
        ),
        (
            {"name": "n", "dataType": "CATEGORICAL", "categories": [{"label": "a", "value": 1}, {"label": "b", "value": 1}]},
            "categories[1].value",
        ),
        ({"name": "n", "dataType": "CATEGORICAL", "minValue": 0, "categories": [{"label": "a", "value": 1}]}, "minValue"),
        ({"name": "n", "dataType": "BOOLEAN", "categories": [{"label": "yes", "value": 1}]}, "categories"),
        ({"name": "n", "dataType": "BOOLEAN", "maxValue": 1}, "maxValue"),
        ({"name": "n", "dataType": "NUMERIC", "description": 7}, "description"),
        (["not", "an", "object"], "body"),
    ],
)  # fmt: skip
def test_invalid_config_is_refused_with_400_naming_the_field(project, body, field):
    _bad_request(_checked(project.post(URL, json=body)), field)
    assert _checked(project.get(URL)).json()["meta"]["totalItems"] == 0


def test_malformed_json_is_400(project):
    r = project.post(URL, content=b"{nope", headers={"content-type": "application/json"})
    _bad_request(_checked(r), "body")


# -- list and get ----------------------------------------------------------------------------


def test_list_pages_newest_first_with_meta(project):
    ids = [_create(project, name=f"c{i}", dataType="NUMERIC")["id"] for i in range(5)]
    r = _checked(project.get(URL, params={"limit": 2}))
    assert r.status_code == 200
    body = r.json()
    assert body["meta"] == {"page": 1, "limit": 2, "totalItems": 5, "totalPages": 3}
    seen = [c["id"] for c in body["data"]]
    for page in (2, 3):
        seen += [
            c["id"]
            for c in _checked(project.get(URL, params={"limit": 2, "page": page})).json()["data"]
        ]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert seen[0] == ids[-1]  # newest first


@pytest.mark.parametrize(("params", "field"), [({"limit": 0}, "limit"), ({"page": 0}, "page")])
def test_list_bad_paging_is_400(project, params, field):
    _bad_request(_checked(project.get(URL, params=params)), field)


def test_unknown_config_is_404(project):
    r = _get(project, "no-such-config")
    assert r.status_code == 404
    assert r.json()["error"] == "LangfuseNotFoundError"
    assert _patch(project, "no-such-config", {"isArchived": True}).status_code == 404


def test_configs_are_invisible_to_other_projects(project, other_project):
    config = _create(project, name="private", dataType="BOOLEAN")
    assert _get(other_project, config["id"]).status_code == 404
    assert _patch(other_project, config["id"], {"isArchived": True}).status_code == 404
    assert _checked(other_project.get(URL)).json()["data"] == []
    assert _get(project, config["id"]).json()["isArchived"] is False


def test_config_routes_need_the_secret_key(project):
    bearer = {"Authorization": f"Bearer {project.public_key}"}
    r = project.http.post(URL, json={"name": "x", "dataType": "BOOLEAN"}, headers=bearer)
    assert r.status_code == 403
    assert project.http.get(URL, headers=bearer).status_code == 403


# -- update ----------------------------------------------------------------------------------


def test_patch_archives_and_unarchives(project):
    config = _create(project, name="arch", dataType="NUMERIC")
    r = _patch(project, config["id"], {"isArchived": True})
    assert r.status_code == 200, r.text
    assert r.json()["isArchived"] is True
    assert r.json()["updatedAt"] >= config["updatedAt"]
    assert r.json()["createdAt"] == config["createdAt"]
    assert _get(project, config["id"]).json()["isArchived"] is True
    assert _patch(project, config["id"], {"isArchived": False}).json()["isArchived"] is False


def test_patch_changes_only_what_is_sent(project):
    config = _create(
        project, name="range", dataType="NUMERIC", minValue=0, maxValue=10, description="d"
    )
    r = _patch(project, config["id"], {"name": "range2", "maxValue": 5})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["name"], got["minValue"], got["maxValue"], got["description"]) == (
        "range2",
        0,
        5,
        "d",
    )
    cleared = _patch(project, config["id"], {"minValue": None, "description": None}).json()
    assert (cleared["minValue"], cleared["maxValue"], cleared["description"]) == (None, 5, None)
    assert _patch(project, config["id"], {}).json()["name"] == "range2"


def test_patch_replaces_categories(project):
    config = _create(
        project, name="cat", dataType="CATEGORICAL", categories=[{"label": "a", "value": 1}]
    )
    new = [{"label": "x", "value": 0}, {"label": "y", "value": 1}]
    assert _patch(project, config["id"], {"categories": new}).json()["categories"] == new
    assert _patch(project, config["id"], {"categories": None}).json()["categories"] == new


@pytest.mark.parametrize(
    ("create", "patch", "field"),
    [
        ({"dataType": "NUMERIC", "minValue": 0, "maxValue": 10}, {"minValue": 11}, "minValue"),
        ({"dataType": "NUMERIC"}, {"categories": [{"label": "a", "value": 1}]}, "categories"),
        ({"dataType": "NUMERIC"}, {"name": "bad/name"}, "name"),
        ({"dataType": "NUMERIC"}, {"isArchived": "yes"}, "isArchived"),
        ({"dataType": "NUMERIC"}, {"dataType": "BOOLEAN"}, "dataType"),
        ({"dataType": "BOOLEAN"}, {"minValue": 0}, "minValue"),
        ({"dataType": "BOOLEAN"}, {"categories": [{"label": "maybe", "value": 0.5}]}, "categories"),
        ({"dataType": "CATEGORICAL", "categories": [{"label": "a", "value": 1}]}, {"categories": []}, "categories"),
        (
            {"dataType": "CATEGORICAL", "categories": [{"label": "a", "value": 1}]},
            {"categories": [{"label": "a", "value": 1}, {"label": "a", "value": 2}]},
            "categories[1].label",
        ),
        ({"dataType": "CATEGORICAL", "categories": [{"label": "a", "value": 1}]}, {"maxValue": 3}, "maxValue"),
        ({"dataType": "NUMERIC"}, "archive", "body"),
    ],
)  # fmt: skip
def test_invalid_patch_is_400_and_changes_nothing(project, create, patch, field):
    config = _create(project, name="p", **create)
    _bad_request(_patch(project, config["id"], patch), field)
    assert _get(project, config["id"]).json() == config


# -- the per-project cache that scores are checked through -----------------------------------


def test_config_cache_sees_other_processes_changes_after_its_ttl(project):
    """A cache stands for another process's: it sees a change made elsewhere after its TTL, and
    at once after ``invalidate`` (what this process's own config routes call)."""
    engine = project.http.app.state.services.engine
    cache = ConfigCache(engine, ttl_s=0.3)
    config = _create(project, name="cached", dataType="NUMERIC")
    assert cache.get(project.id)[config["id"]].is_archived is False
    assert _patch(project, config["id"], {"isArchived": True}).status_code == 200
    assert cache.get(project.id)[config["id"]].is_archived is False  # still the snapshot
    time.sleep(0.35)
    assert cache.get(project.id)[config["id"]].is_archived is True
    assert _patch(project, config["id"], {"isArchived": False}).status_code == 200
    cache.invalidate(project.id)
    assert cache.cached(project.id) is None
    assert cache.get(project.id)[config["id"]].is_archived is False


def test_config_cache_keeps_a_bounded_number_of_projects(project, other_project):
    engine = project.http.app.state.services.engine
    cache = ConfigCache(engine, max_projects=1)
    _create(project, name="a", dataType="BOOLEAN")
    assert len(cache.get(project.id)) == 1
    assert cache.get(other_project.id) == {}
    assert cache.cached(project.id) is None and cache.cached(other_project.id) == {}
