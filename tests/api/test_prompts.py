"""Prompts v2 through the public API: versions, labels, tags, folders, composability, deletes,
listing, bad input and project isolation (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import concurrent.futures
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.contract import assert_response_matches

BASE = "/api/public/v2/prompts"


def _url(name: str) -> str:
    return f"{BASE}/{quote(name, safe='')}"


def _create(project, **body: Any) -> dict[str, Any]:
    response = project.post(BASE, json=body)
    assert response.status_code == 200, response.text
    assert_response_matches(response)
    return response.json()


def _get(project, name: str, **params: Any) -> dict[str, Any]:
    response = project.get(_url(name), params=params)
    assert response.status_code == 200, response.text
    assert_response_matches(response, path="/api/public/v2/prompts/{promptName}")
    return response.json()


def _labels(project, name: str, version: int, labels: list[str]) -> httpx.Response:
    return project.request("PATCH", f"{_url(name)}/versions/{version}", json={"newLabels": labels})


def _bad(response: httpx.Response, field: str, status: int = 400) -> str:
    assert response.status_code == status, response.text
    message = response.json()["message"]
    assert field in message, message
    return message


def test_create_text_prompt_returns_the_stored_version(project):
    created = _create(
        project,
        name="movie-critic",
        prompt="As a {{criticLevel}} critic, rate {{movie}}.",
        config={"model": "gpt-4o", "temperature": 0.2},
        labels=["production"],
        tags=["entertainment"],
        commitMessage="first cut",
    )
    assert created["version"] == 1
    assert created["type"] == "text"
    assert created["labels"] == ["latest", "production"]
    assert created["tags"] == ["entertainment"]
    assert created["config"] == {"model": "gpt-4o", "temperature": 0.2}
    assert created["commitMessage"] == "first cut"
    assert _get(project, "movie-critic") == {**created, "resolutionGraph": None}


def test_versions_increment_and_labels_move(project):
    first = _create(project, name="p", prompt="one", labels=["production", "staging"])
    second = _create(project, name="p", prompt="two", labels=["staging"])
    assert (first["version"], second["version"]) == (1, 2)
    assert _get(project, "p")["prompt"] == "one"  # production stays on 1
    assert _get(project, "p", label="staging")["version"] == 2
    assert _get(project, "p", label="latest")["version"] == 2
    assert _get(project, "p", version=1)["labels"] == ["production"]
    assert _get(project, "p", version=2)["labels"] == ["latest", "staging"]


def test_get_without_production_label_is_404(project):
    _create(project, name="draft", prompt="x")
    response = project.get(_url("draft"))
    assert response.status_code == 404
    assert "production" in response.json()["message"]
    assert project.get(_url("draft"), params={"label": "nope"}).status_code == 404
    assert project.get(_url("draft"), params={"version": 7}).status_code == 404
    assert _get(project, "draft", label="latest")["prompt"] == "x"


def test_patch_sets_the_labels_of_a_version(project):
    _create(project, name="p", prompt="one", labels=["production"])
    _create(project, name="p", prompt="two")
    moved = _labels(project, "p", 2, ["production", "canary"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["labels"] == ["canary", "latest", "production"]
    assert _get(project, "p")["version"] == 2
    assert _get(project, "p", version=1)["labels"] == []
    # The labels of a version are replaced; "latest" stays where the server keeps it.
    again = _labels(project, "p", 2, ["canary"])
    assert again.json()["labels"] == ["canary", "latest"]
    assert project.get(_url("p")).status_code == 404


def test_latest_cannot_be_set_by_hand(project):
    _create(project, name="p", prompt="one")
    _create(project, name="p", prompt="two")
    _bad(_labels(project, "p", 1, ["latest"]), "latest")
    _bad(project.post(BASE, json={"name": "p", "prompt": "x", "labels": ["latest"]}), "labels")
    assert _get(project, "p", label="latest")["version"] == 2


def test_label_on_a_missing_version_is_404(project):
    _create(project, name="p", prompt="one")
    response = _labels(project, "p", 5, ["production"])
    assert response.status_code == 404
    assert "version 5" in response.json()["message"]
    assert (
        project.request("PATCH", f"{_url('nope')}/versions/1", json={"newLabels": []}).status_code
        == 404
    )


def test_tags_apply_to_every_version(project):
    _create(project, name="p", prompt="one", tags=["a"])
    _create(project, name="p", prompt="two")  # no tags given: keeps the prompt's tags
    assert _get(project, "p", version=2)["tags"] == ["a"]
    _create(project, name="p", prompt="three", tags=["b", "c"])
    for version in (1, 2, 3):
        assert _get(project, "p", version=version)["tags"] == ["b", "c"]


def test_chat_prompt_with_placeholders_round_trips(project):
    messages = [
        {"role": "system", "content": "You are an {{criticlevel}} movie critic"},
        {"type": "placeholder", "name": "chat_history"},
        {"role": "user", "content": "What should I watch next?"},
    ]
    created = _create(project, name="chat", type="chat", prompt=messages, labels=["production"])
    assert created["type"] == "chat"
    assert created["prompt"] == messages
    _bad(project.post(BASE, json={"name": "chat", "type": "text", "prompt": "x"}), "type")


def test_folder_names_work_in_every_route(project):
    name = "team/support/greeting"
    _create(project, name=name, prompt="hi", labels=["production"])
    assert _get(project, name)["name"] == name
    assert _labels(project, name, 1, ["staging"]).status_code == 200
    listed = project.get(BASE, params={"name": name}).json()["data"]
    assert [p["name"] for p in listed] == [name]
    assert project.delete(_url(name), params={"version": 1}).status_code == 204
    assert project.get(_url(name), params={"version": 1}).status_code == 404


def test_reference_tags_resolve_when_served(project):
    base = _create(project, name="base", prompt="Be concise.", labels=["production"])
    pinned = _create(project, name="style", prompt="Write {{tone}}.")
    parent = _create(
        project,
        name="answer",
        prompt=(
            "@@@langfusePrompt:name=base|label=production@@@ "
            "@@@langfusePrompt:name=style|version=1@@@ Answer {{question}}."
        ),
        labels=["production"],
    )
    served = _get(project, "answer")
    assert served["prompt"] == "Be concise. Write {{tone}}. Answer {{question}}."
    graph = served["resolutionGraph"]
    assert graph["root"] == {"id": parent["id"], "name": "answer", "version": 1}
    children = graph["dependencies"][parent["id"]]
    assert {(c["id"], c["name"], c["version"]) for c in children} == {
        (base["id"], "base", 1),
        (pinned["id"], "style", 1),
    }
    raw = _get(project, "answer", resolve="false")
    assert raw["prompt"] == parent["prompt"]
    assert raw["resolutionGraph"] is None
    # A new production version of the referenced prompt shows up in the next read.
    _create(project, name="base", prompt="Be brief.", labels=["production"])
    assert _get(project, "answer")["prompt"].startswith("Be brief. ")


def test_references_nest_and_resolve_inside_chat_messages(project):
    _create(project, name="leaf", prompt="LEAF", labels=["production"])
    _create(project, name="mid", prompt="mid[@@@langfusePrompt:name=leaf|label=production@@@]")
    _create(
        project,
        name="chat",
        type="chat",
        prompt=[
            {"role": "system", "content": "@@@langfusePrompt:name=mid|version=1@@@"},
            {"type": "placeholder", "name": "history"},
        ],
        labels=["production"],
    )
    served = _get(project, "chat")
    assert served["prompt"] == [
        {"role": "system", "content": "mid[LEAF]"},
        {"type": "placeholder", "name": "history"},
    ]
    assert len(served["resolutionGraph"]["dependencies"]) == 2


@pytest.mark.parametrize(
    "prompt, needle",
    [
        ("@@@langfusePrompt:name=ghost|label=production@@@", "does not exist"),
        ("@@@langfusePrompt:name=base|version=9@@@", "does not exist"),
        ("@@@langfusePrompt:name=base@@@", "exactly one of label and version"),
        ("@@@langfusePrompt:name=base|label=a|version=1@@@", "exactly one of label and version"),
        ("@@@langfusePrompt:name=base|version=x@@@", "version must be a number"),
        ("@@@langfusePrompt:label=production@@@", "needs a name"),
        ("@@@langfusePrompt:oops@@@", "malformed reference tag"),
        ("@@@langfusePrompt:name=chat|label=production@@@", "only text prompts"),
    ],
)
def test_bad_references_are_refused_on_create(project, prompt, needle):
    _create(project, name="base", prompt="base", labels=["production"])
    _create(
        project,
        name="chat",
        type="chat",
        prompt=[{"role": "user", "content": "x"}],
        labels=["production"],
    )
    message = _bad(project.post(BASE, json={"name": "new", "prompt": prompt}), "prompt")
    assert needle in message
    # Nothing of the refused version was stored.
    assert project.get(_url("new"), params={"label": "latest"}).status_code == 404


def test_reference_cycles_are_refused(project):
    _create(project, name="a", prompt="A", labels=["production"])
    _create(
        project,
        name="b",
        prompt="B @@@langfusePrompt:name=a|label=production@@@",
        labels=["production"],
    )
    # a -> b -> a, through a new production version of a.
    message = _bad(
        project.post(
            BASE,
            json={
                "name": "a",
                "prompt": "A2 @@@langfusePrompt:name=b|label=production@@@",
                "labels": ["production"],
            },
        ),
        "prompt",
    )
    assert "circular" in message
    assert _get(project, "a")["version"] == 1
    assert _get(project, "a", label="latest")["version"] == 1
    # Self reference.
    message = _bad(
        project.post(
            BASE, json={"name": "self", "prompt": "@@@langfusePrompt:name=self|version=1@@@"}
        ),
        "prompt",
    )
    assert "does not exist" in message or "circular" in message
    # A label move can close a cycle too: a v2 (unlabelled) references b; moving production
    # onto it is refused.
    _create(project, name="a", prompt="A2 @@@langfusePrompt:name=b|label=production@@@")
    assert "circular" in _bad(_labels(project, "a", 2, ["production"]), "prompt")
    assert _get(project, "a")["version"] == 1


def test_referenced_versions_cannot_be_deleted_or_unlabelled(project):
    _create(project, name="base", prompt="base", labels=["production"])
    _create(project, name="user", prompt="@@@langfusePrompt:name=base|label=production@@@")
    assert "'user' version 1" in _bad(project.delete(_url("base")), "prompt")
    _bad(project.delete(_url("base"), params={"label": "production"}), "prompt")
    _bad(_labels(project, "base", 1, []), "prompt")
    assert _get(project, "base")["version"] == 1
    # Once the referencing prompt is gone, the base can go.
    assert project.delete(_url("user")).status_code == 204
    assert project.delete(_url("base")).status_code == 204


def test_delete_by_version_label_or_all(project):
    for text in ("one", "two", "three"):
        _create(project, name="p", prompt=text)
    assert _labels(project, "p", 1, ["production"]).status_code == 200
    assert project.delete(_url("p"), params={"version": 3}).status_code == 204
    assert _get(project, "p", label="latest")["version"] == 2  # latest moves back
    assert project.delete(_url("p"), params={"label": "production"}).status_code == 204
    assert project.get(_url("p"), params={"version": 1}).status_code == 404
    assert project.delete(_url("p"), params={"version": 9}).status_code == 404
    assert project.delete(_url("p")).status_code == 204
    assert project.get(_url("p"), params={"label": "latest"}).status_code == 404
    assert project.delete(_url("p")).status_code == 404
    # The name can be used again; versions start over.
    assert _create(project, name="p", prompt="again")["version"] == 1


def test_list_filters_and_pages(project):
    _create(project, name="alpha", prompt="a1", labels=["production"], tags=["x"])
    _create(project, name="alpha", prompt="a2", config={"v": 2})
    _create(project, name="beta", type="chat", prompt=[{"role": "user", "content": "b"}])
    _create(project, name="gamma", prompt="g", tags=["y"], labels=["staging"])
    response = project.get(BASE)
    assert_response_matches(response)
    everything = response.json()
    assert everything["meta"] == {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}
    alpha = everything["data"][0]
    assert alpha["name"] == "alpha"
    assert alpha["versions"] == [1, 2]
    assert alpha["labels"] == ["latest", "production"]
    assert alpha["tags"] == ["x"]
    assert alpha["lastConfig"] == {"v": 2}
    assert [p["type"] for p in everything["data"]] == ["text", "chat", "text"]

    def names(**params: Any) -> list[str]:
        response = project.get(BASE, params=params)
        assert response.status_code == 200, response.text
        return [p["name"] for p in response.json()["data"]]

    assert names(name="beta") == ["beta"]
    assert names(tag="x") == ["alpha"]
    assert names(label="production") == ["alpha"]
    assert names(label="staging") == ["gamma"]
    filtered = project.get(BASE, params={"label": "production"}).json()["data"][0]
    assert filtered["versions"] == [1]
    assert filtered["lastConfig"] == {}
    page = project.get(BASE, params={"limit": 2, "page": 2}).json()
    assert [p["name"] for p in page["data"]] == ["gamma"]
    assert page["meta"]["totalPages"] == 2
    future = "2999-01-01T00:00:00Z"
    assert names(fromUpdatedAt=future) == []
    assert names(toUpdatedAt=future) == ["alpha", "beta", "gamma"]


def test_list_updated_range_uses_label_changes(project):
    _create(project, name="p", prompt="one")
    time.sleep(0.01)
    mark = _get(project, "p", label="latest")["updatedAt"]
    time.sleep(0.01)
    assert _labels(project, "p", 1, ["production"]).status_code == 200
    listed = project.get(BASE, params={"fromUpdatedAt": mark}).json()["data"]
    assert [p["name"] for p in listed] == ["p"]
    assert listed[0]["lastUpdatedAt"] > mark


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": "x"}, "name"),
        ({"name": "", "prompt": "x"}, "name"),
        ({"name": "a|b", "prompt": "x"}, "name"),
        ({"name": "/lead", "prompt": "x"}, "name"),
        ({"name": "trail/", "prompt": "x"}, "name"),
        ({"name": "a//b", "prompt": "x"}, "name"),
        ({"name": "p"}, "prompt"),
        ({"name": "p", "prompt": 5}, "prompt"),
        ({"name": "p", "type": "chat", "prompt": "text"}, "prompt"),
        ({"name": "p", "type": "other", "prompt": "x"}, "type"),
        ({"name": "p", "type": "chat", "prompt": [{"role": "user"}]}, "prompt[0].content"),
        ({"name": "p", "type": "chat", "prompt": [{"content": "x"}]}, "prompt[0].role"),
        ({"name": "p", "type": "chat", "prompt": ["hi"]}, "prompt[0]"),
        ({"name": "p", "type": "chat", "prompt": [{"type": "placeholder"}]}, "prompt[0].name"),
        (
            {"name": "p", "type": "chat", "prompt": [{"type": "placeholder", "name": "1x"}]},
            "prompt[0].name",
        ),
        (
            {
                "name": "p",
                "type": "chat",
                "prompt": [
                    {"type": "placeholder", "name": "h"},
                    {"type": "placeholder", "name": "h"},
                ],
            },
            "prompt[1].name",
        ),
        ({"name": "p", "prompt": "x", "config": "temperature=1"}, "config"),
        ({"name": "p", "prompt": "x", "config": [1, 2]}, "config"),
        ({"name": "p", "prompt": "x", "labels": "production"}, "labels"),
        ({"name": "p", "prompt": "x", "labels": ["Production"]}, "labels"),
        ({"name": "p", "prompt": "x", "labels": ["has space"]}, "labels"),
        ({"name": "p", "prompt": "x", "tags": "t"}, "tags"),
        ({"name": "p", "prompt": "x", "tags": [""]}, "tags"),
        ({"name": "p", "prompt": "x", "commitMessage": 3}, "commitMessage"),
    ],
)
def test_invalid_create_is_refused_naming_the_field(project, body, field):
    _bad(project.post(BASE, json=body), field)
    assert project.get(BASE).json()["data"] == []


def test_invalid_requests_name_the_parameter(project):
    _create(project, name="p", prompt="x", labels=["production"])
    _bad(project.post(BASE, content=b"{nope", headers={"content-type": "application/json"}), "body")
    _bad(project.get(_url("p"), params={"version": "two"}), "version")
    _bad(project.get(_url("p"), params={"version": 1, "label": "production"}), "label")
    _bad(project.get(_url("p"), params={"label": "Not Valid"}), "label")
    _bad(project.request("PATCH", f"{_url('p')}/versions/1", json={}), "newLabels")
    _bad(project.request("PATCH", f"{_url('p')}/versions/1", json={"newLabels": "x"}), "newLabels")
    _bad(project.request("PATCH", f"{_url('p')}/versions/x", json={"newLabels": []}), "version")
    _bad(project.get(BASE, params={"fromUpdatedAt": "yesterday"}), "fromUpdatedAt")
    _bad(project.get(BASE, params={"limit": 0}), "limit")


def test_prompts_are_invisible_to_other_projects(project, other_project):
    _create(project, name="secret", prompt="mine", labels=["production"])
    assert other_project.get(_url("secret")).status_code == 404
    assert other_project.get(BASE).json()["data"] == []
    assert _labels(other_project, "secret", 1, ["staging"]).status_code == 404
    assert other_project.delete(_url("secret")).status_code == 404
    # The other project may use the same name for its own prompt.
    assert _create(other_project, name="secret", prompt="theirs")["version"] == 1
    assert _get(project, "secret")["prompt"] == "mine"


def test_references_do_not_cross_projects(project, other_project):
    _create(other_project, name="base", prompt="theirs", labels=["production"])
    message = _bad(
        project.post(
            BASE, json={"name": "p", "prompt": "@@@langfusePrompt:name=base|label=production@@@"}
        ),
        "prompt",
    )
    assert "does not exist" in message


def test_public_key_only_cannot_manage_prompts(project):
    _create(project, name="p", prompt="x", labels=["production"])
    assert _get(project, "p")["prompt"] == "x"  # now cached, and the secret key verified
    bearer = {"Authorization": f"Bearer {project.public_key}"}
    assert project.http.get(_url("p"), headers=bearer).status_code == 403
    wrong = base64.b64encode(f"{project.public_key}:sk-lf-wrong".encode()).decode()
    assert (
        project.http.get(_url("p"), headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    )
    assert project.http.get(BASE, headers=bearer).status_code == 403
    assert (
        project.http.post(BASE, json={"name": "p", "prompt": "x"}, headers=bearer).status_code
        == 403
    )
    assert project.http.get(BASE).status_code == 401


def test_cached_reads_see_every_change(project):
    _create(project, name="p", prompt="one", labels=["production"])
    services = project.http.app.state.services
    for _ in range(3):
        assert _get(project, "p")["prompt"] == "one"
    assert services.prompts.cache.hits >= 2
    _create(project, name="p", prompt="two", labels=["production"])
    assert _get(project, "p")["prompt"] == "two"
    assert _labels(project, "p", 1, ["production"]).status_code == 200
    assert _get(project, "p")["prompt"] == "one"
    assert project.delete(_url("p"), params={"version": 1}).status_code == 204
    assert project.get(_url("p")).status_code == 404


def test_concurrent_creates_get_distinct_versions(project):
    def create(i: int) -> int:
        return _create(project, name="race", prompt=f"v{i}")["version"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        versions = sorted(pool.map(create, range(16)))
    assert versions == list(range(1, 17))
    assert _get(project, "race", label="latest")["version"] == 16


def test_generations_linked_to_a_prompt_carry_its_id(project):
    version = _create(project, name="linked", prompt="hi", labels=["production"])
    events = [
        {
            "id": f"evt-{obs}",
            "type": "generation-create",
            "timestamp": "2026-01-01T00:00:00Z",
            "body": {
                "id": obs,
                "traceId": "t-linked",
                "startTime": "2026-01-01T00:00:00Z",
                "promptName": "linked",
                "promptVersion": number,
            },
        }
        for obs, number in (("g-1", 1), ("g-unknown", 9))
    ]
    assert project.ingest(*events).status_code == 207
    known = project.get("/api/public/observations/g-1").json()
    assert (known["promptId"], known["promptName"], known["promptVersion"]) == (
        version["id"],
        "linked",
        1,
    )
    unknown = project.get("/api/public/observations/g-unknown").json()
    assert (unknown["promptId"], unknown["promptName"], unknown["promptVersion"]) == (
        None,
        "linked",
        9,
    )
