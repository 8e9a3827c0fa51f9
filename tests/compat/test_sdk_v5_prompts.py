"""Prompt management through the newest Langfuse Python SDK (5.x), unchanged, against a real
`tracehouse serve` (the compat harness's server subprocess).

The SDK client lives in this process, built only from its public constructor arguments: the
server URL and keys, a private OpenTelemetry ``TracerProvider`` (so nothing global is touched)
and an ``httpx.Client`` whose request hook records every request the SDK's API client sends —
that is how a prompt served from the SDK's own cache is told apart from one fetched. Nothing of
the SDK is patched. What the SDK wrote is read back through the HTTP API and through the SDK's
API client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import NotFoundError

from tests.compat.conftest import Server, sdk_client

pytestmark = pytest.mark.compat

RUN = uuid.uuid4().hex[:10]
PROMPTS = "/api/public/v2/prompts"


class Sent:
    """The requests the SDK's API client sent (method and decoded path), in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def hook(self, request: httpx.Request) -> None:
        self.requests.append((request.method, unquote(request.url.raw_path.decode())))

    def prompt_gets(self, name: str) -> int:
        """GETs of one prompt by name (any label or version)."""
        path = f"{PROMPTS}/{name}"
        return sum(1 for m, p in self.requests if m == "GET" and p.split("?")[0] == path)


@pytest.fixture(scope="module")
def sent() -> Sent:
    return Sent()


@pytest.fixture(scope="module")
def lf(server: Server, sent: Sent) -> Iterator[Langfuse]:
    with sdk_client(server, "sdk5-prompts", {"request": [sent.hook]}) as client:
        yield client


def _name(suffix: str) -> str:
    return f"sdk5-{RUN}/{suffix}"


def _http_prompt(server: Server, name: str, **params: Any) -> dict[str, Any]:
    r = server.http.get(f"{PROMPTS}/{quote(name, safe='')}", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --------------------------------------------------------------------------------------------
# Creating and reading versions


def test_text_prompt_versions_labels_tags_config_in_a_folder(lf: Langfuse, server: Server) -> None:
    name = _name("team/support/greeting")
    first = lf.create_prompt(
        name=name,
        prompt="Hello {{customer}}, I am {{agent}} from support.",
        labels=["production"],
        tags=["support", "greeting"],
        config={"model": "gpt-4o", "temperature": 0.2, "stop": ["\n\n"]},
        commit_message="first draft",
    )
    assert (first.name, first.version) == (name, 1)
    assert set(first.labels) == {"production", "latest"}
    assert first.commit_message == "first draft"
    second = lf.create_prompt(
        name=name,
        prompt="Hi {{customer}}! {{agent}} here.",
        labels=["staging"],
        config={"model": "gpt-4o-mini"},
        commit_message="shorter",
    )
    assert second.version == 2
    assert set(second.labels) == {"staging", "latest"}
    # tags belong to the name: a version created without tags keeps them
    assert sorted(second.tags) == ["greeting", "support"]

    production = lf.get_prompt(name)
    assert production.version == 1
    assert production.prompt == "Hello {{customer}}, I am {{agent}} from support."
    assert production.config == {"model": "gpt-4o", "temperature": 0.2, "stop": ["\n\n"]}
    assert set(production.labels) == {"production"}
    assert sorted(production.tags) == ["greeting", "support"]
    assert production.commit_message == "first draft"
    assert production.variables == ["customer", "agent"]
    assert production.compile(customer="Ada", agent="Bob") == ("Hello Ada, I am Bob from support.")
    # a variable not given stays as written
    assert production.compile(customer="Ada") == "Hello Ada, I am {{agent}} from support."

    staging = lf.get_prompt(name, label="staging")
    assert (staging.version, staging.config) == (2, {"model": "gpt-4o-mini"})
    assert staging.compile(customer="Ada", agent="Bob") == "Hi Ada! Bob here."
    latest = lf.get_prompt(name, label="latest")
    assert latest.version == 2
    by_version = lf.get_prompt(name, version=1)
    assert by_version.prompt == production.prompt
    assert set(by_version.labels) == {"production"}

    # the server lists the name with both versions (the folder is part of the name)
    listed = server.get(PROMPTS, params={"name": name}).json()["data"]
    assert [(p["name"], p["versions"]) for p in listed] == [(name, [1, 2])]
    assert sorted(listed[0]["labels"]) == ["latest", "production", "staging"]


def test_chat_prompt_with_a_placeholder(lf: Langfuse) -> None:
    name = _name("team/support/chat")
    messages = [
        {"role": "system", "content": "You are {{persona}}. Answer in {{language}}."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}}"},
    ]
    created = lf.create_prompt(
        name=name,
        type="chat",
        prompt=messages,  # type: ignore[arg-type]
        labels=["production"],
        tags=["chat"],
        config={"temperature": 0},
        commit_message="chat v1",
    )
    assert created.version == 1

    chat = lf.get_prompt(name, type="chat")
    assert chat.version == 1
    assert chat.config == {"temperature": 0}
    assert chat.tags == ["chat"]
    assert chat.commit_message == "chat v1"
    assert chat.variables == ["persona", "language", "question"]
    history = [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "It shipped yesterday."},
    ]
    compiled = chat.compile(
        persona="a support agent", language="English", question="When will it arrive?",
        history=history,
    )  # fmt: skip
    assert compiled == [
        {"role": "system", "content": "You are a support agent. Answer in English."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "It shipped yesterday."},
        {"role": "user", "content": "When will it arrive?"},
    ]
    # without a value the placeholder stays in the compiled messages
    open_compiled = chat.compile(persona="p", language="l", question="q")
    assert open_compiled[1] == {"type": "placeholder", "name": "history"}
    assert len(open_compiled) == 3

    # a second version gets number 2; by version the first one is still there
    lf.create_prompt(name=name, type="chat", prompt=messages[:1], labels=[])  # type: ignore[arg-type]
    assert lf.get_prompt(name, type="chat", label="latest").version == 2
    assert lf.get_prompt(name, type="chat").version == 1  # production did not move
    assert len(lf.get_prompt(name, type="chat", version=1).prompt) == 3


# --------------------------------------------------------------------------------------------
# Labels and the SDK's cache


def test_update_prompt_moves_a_label_and_invalidates_the_cache(
    lf: Langfuse, server: Server, sent: Sent
) -> None:
    name = _name("labels/moving")
    lf.create_prompt(name=name, prompt="one", labels=["production"])
    lf.create_prompt(name=name, prompt="two", labels=[])
    assert lf.get_prompt(name).prompt == "one"  # now cached
    before = sent.prompt_gets(name)
    assert lf.get_prompt(name).prompt == "one"
    assert sent.prompt_gets(name) == before  # served from the SDK's cache

    updated = lf.update_prompt(name=name, version=2, new_labels=["production", "reviewed"])
    assert updated.version == 2
    assert set(updated.labels) == {"production", "reviewed", "latest"}
    # update_prompt invalidated the cache of the name: the next read asks the server
    moved = lf.get_prompt(name)
    assert (moved.version, moved.prompt) == (2, "two")
    assert sent.prompt_gets(name) == before + 1
    assert lf.get_prompt(name, version=1).labels == []
    assert lf.get_prompt(name, label="reviewed").version == 2


def test_label_moved_elsewhere_is_seen_without_the_cache(lf: Langfuse, server: Server) -> None:
    """Another client moves the label: the SDK's cache keeps the old version until its TTL,
    ``cache_ttl_seconds=0`` reads through."""
    name = _name("labels/elsewhere")
    lf.create_prompt(name=name, prompt="old", labels=["production"])
    lf.create_prompt(name=name, prompt="new", labels=[])
    assert lf.get_prompt(name).prompt == "old"
    r = server.http.patch(
        f"{PROMPTS}/{quote(name, safe='')}/versions/2", json={"newLabels": ["production"]}
    )
    assert r.status_code == 200, r.text
    assert lf.get_prompt(name).prompt == "old"  # still within the 60 s TTL
    assert lf.get_prompt(name, cache_ttl_seconds=0).prompt == "new"
    # the fresh read replaced the cache entry
    assert lf.get_prompt(name).prompt == "new"


def test_cached_prompt_is_served_without_a_request(
    lf: Langfuse, server: Server, sent: Sent
) -> None:
    name = _name("cache/served")
    lf.create_prompt(name=name, prompt="cached {{x}}", labels=["production"])
    first = lf.get_prompt(name, cache_ttl_seconds=300)
    assert sent.prompt_gets(name) == 1
    # deleted on the server: the SDK does not ask again within the TTL
    r = server.http.delete(f"{PROMPTS}/{quote(name, safe='')}")
    assert r.status_code == 204, r.text
    again = lf.get_prompt(name, cache_ttl_seconds=300)
    assert again is first
    assert again.compile(x="1") == "cached 1"
    assert sent.prompt_gets(name) == 1
    # bypassing the cache reaches the server, which no longer has it
    with pytest.raises(NotFoundError):
        lf.get_prompt(name, cache_ttl_seconds=0, max_retries=0)
    assert sent.prompt_gets(name) == 2


def test_fallback_is_used_when_the_prompt_does_not_exist(lf: Langfuse, sent: Sent) -> None:
    name = _name("cache/missing")
    text = lf.get_prompt(name, fallback="Dear {{who}}", max_retries=0)
    assert text.is_fallback is True
    assert (text.version, text.prompt) == (0, "Dear {{who}}")
    assert text.compile(who="Ada") == "Dear Ada"
    chat = lf.get_prompt(
        name, type="chat", label="staging", max_retries=0,
        fallback=[{"role": "system", "content": "You are {{role}}."}],
    )  # fmt: skip
    assert chat.is_fallback is True
    assert chat.labels == ["staging"]
    assert chat.compile(role="kind") == [{"role": "system", "content": "You are kind."}]
    # each call asked the server (a 404 is not cached), once each: no retries
    assert sent.prompt_gets(name) == 2
    with pytest.raises(NotFoundError):
        lf.get_prompt(name, max_retries=0)


# --------------------------------------------------------------------------------------------
# Composability


def test_reference_tags_come_back_resolved(lf: Langfuse, server: Server) -> None:
    base = _name("shared/base")
    lf.create_prompt(name=base, prompt="Be concise and {{tone}}.", labels=["production"])
    lf.create_prompt(name=base, prompt="Be brief.", labels=["legacy"])
    composite = _name("composed/answer")
    lf.create_prompt(
        name=composite,
        prompt=(
            f"@@@langfusePrompt:name={base}|label=production@@@ "
            f"(before: @@@langfusePrompt:name={base}|version=2@@@) Answer: {{{{question}}}}"
        ),
        labels=["production"],
    )
    prompt = lf.get_prompt(composite, cache_ttl_seconds=0)
    assert prompt.prompt == "Be concise and {{tone}}. (before: Be brief.) Answer: {{question}}"
    assert prompt.variables == ["tone", "question"]
    assert prompt.compile(tone="kind", question="why?") == (
        "Be concise and kind. (before: Be brief.) Answer: why?"
    )
    # a chat prompt may reference a text prompt in its messages
    chat_name = _name("composed/chat")
    lf.create_prompt(
        name=chat_name,
        type="chat",
        prompt=[  # type: ignore[arg-type]
            {"role": "system", "content": f"@@@langfusePrompt:name={base}|label=production@@@"},
            {"role": "user", "content": "{{question}}"},
        ],
        labels=["production"],
    )
    chat = lf.get_prompt(chat_name, type="chat", cache_ttl_seconds=0)
    assert chat.compile(tone="warm", question="hi") == [
        {"role": "system", "content": "Be concise and warm."},
        {"role": "user", "content": "hi"},
    ]
    # moving the base's production label changes what the composite resolves to
    lf.update_prompt(name=base, version=2, new_labels=["production"])
    again = lf.get_prompt(composite, cache_ttl_seconds=0)
    assert again.prompt == "Be brief. (before: Be brief.) Answer: {{question}}"
    # unresolved, as stored
    raw = _http_prompt(server, composite, resolve="false")
    assert raw["prompt"].startswith(f"@@@langfusePrompt:name={base}|label=production@@@")


# --------------------------------------------------------------------------------------------
# Generations linked to prompt versions


@pytest.fixture(scope="module")
def linked(lf: Langfuse, server: Server) -> dict[str, Any]:
    """Generations created with ``prompt=``: two of a text prompt's versions, one of a chat
    prompt, one with a fallback prompt (no link) and one without a prompt."""
    text_name, chat_name = _name("linked/text"), _name("linked/chat")
    lf.create_prompt(name=text_name, prompt="v1 {{q}}", labels=["production"])
    lf.create_prompt(name=text_name, prompt="v2 {{q}}", labels=["staging"])
    lf.create_prompt(
        name=chat_name, type="chat", prompt=[{"role": "user", "content": "{{q}}"}],
        labels=["production"],
    )  # fmt: skip
    v1 = lf.get_prompt(text_name, cache_ttl_seconds=0)
    v2 = lf.get_prompt(text_name, label="staging", cache_ttl_seconds=0)
    chat = lf.get_prompt(chat_name, type="chat", cache_ttl_seconds=0)
    fallback = lf.get_prompt(_name("linked/missing"), fallback="fb {{q}}", max_retries=0)
    ids: dict[str, Any] = {}
    with lf.start_as_current_observation(as_type="span", name="linked-root") as root:
        with lf.start_as_current_observation(
            as_type="generation",
            name="gen-v1-a",
            model="m",
            prompt=v1,
            input=v1.compile(q="a"),
        ) as g:
            g.update(output="ok", usage_details={"input": 3, "output": 1})
            ids["v1_a"] = g.id
        ids["v1_b"] = (
            lf.start_observation(as_type="generation", name="gen-v1-b", model="m", prompt=v1)
            .end()
            .id
        )
        gen_v2 = lf.start_observation(as_type="generation", name="gen-v2", model="m")
        gen_v2.update(prompt=v2)  # linked after the start
        ids["v2"] = gen_v2.end().id
        with lf.start_as_current_observation(
            as_type="generation", name="gen-chat", model="m", prompt=chat
        ) as g:
            ids["chat"] = g.id
        with lf.start_as_current_observation(
            as_type="generation", name="gen-fallback", model="m", prompt=fallback
        ) as g:
            ids["fallback"] = g.id
        with lf.start_as_current_observation(as_type="generation", name="gen-plain") as g:
            ids["plain"] = g.id
        ids["root"] = root.id
        ids["trace"] = lf.get_current_trace_id()
    lf.flush()
    ids["text_name"], ids["chat_name"] = text_name, chat_name
    ids["prompt_ids"] = {
        (text_name, 1): _http_prompt(server, text_name, version=1)["id"],
        (text_name, 2): _http_prompt(server, text_name, version=2)["id"],
        (chat_name, 1): _http_prompt(server, chat_name, version=1)["id"],
    }
    return ids


def _expected_links(linked: dict[str, Any]) -> dict[str, tuple[str | None, int | None]]:
    text_name, chat_name = linked["text_name"], linked["chat_name"]
    return {
        linked["v1_a"]: (text_name, 1),
        linked["v1_b"]: (text_name, 1),
        linked["v2"]: (text_name, 2),
        linked["chat"]: (chat_name, 1),
        linked["fallback"]: (None, None),
        linked["plain"]: (None, None),
        linked["root"]: (None, None),
    }


def test_generations_carry_the_prompt_link(linked: dict[str, Any], server: Server) -> None:
    for obs_id, (name, version) in _expected_links(linked).items():
        o = server.get(f"/api/public/observations/{obs_id}").json()
        assert (o["promptName"], o["promptVersion"]) == (name, version), o["name"]
        # The server looks the linked version up and gives its id, as Langfuse does.
        expected_id = None if name is None else linked["prompt_ids"][(name, version)]
        assert o["promptId"] == expected_id, o["name"]


def test_sdk_api_client_reads_the_prompt_link(linked: dict[str, Any], lf: Langfuse) -> None:
    page = lf.api.observations.get_many(
        trace_id=linked["trace"], fields="core,basic,prompt", limit=50
    )
    got = {o.id: (o.prompt_name, o.prompt_version) for o in page.data}
    assert got == _expected_links(linked)


def _filter(*conditions: dict[str, Any]) -> str:
    return json.dumps(list(conditions))


def test_observations_filter_by_prompt_name_and_version(
    linked: dict[str, Any], server: Server, lf: Langfuse
) -> None:
    text_name = linked["text_name"]
    by_name = {"type": "string", "column": "promptName", "operator": "=", "value": text_name}
    version_2 = {"type": "number", "column": "promptVersion", "operator": "=", "value": 2}
    version_1 = {"type": "number", "column": "promptVersion", "operator": "=", "value": 1}

    def v1_ids(*conds: dict[str, Any]) -> set[str]:
        r = server.get(
            "/api/public/observations",
            params={"type": "GENERATION", "filter": _filter(*conds), "limit": 100},
        )
        return {o["id"] for o in r.json()["data"]}

    assert v1_ids(by_name) == {linked["v1_a"], linked["v1_b"], linked["v2"]}
    assert v1_ids(by_name, version_1) == {linked["v1_a"], linked["v1_b"]}
    assert v1_ids(by_name, version_2) == {linked["v2"]}
    any_of = {
        "type": "stringOptions",
        "column": "promptName",
        "operator": "any of",
        "value": [text_name, linked["chat_name"]],
    }
    assert v1_ids(any_of) == {linked["v1_a"], linked["v1_b"], linked["v2"], linked["chat"]}

    # the v2 list through the SDK's own API client
    page = lf.api.observations.get_many(
        type="GENERATION", filter=_filter(by_name, version_1), fields="core,prompt", limit=100
    )
    assert {o.id for o in page.data} == {linked["v1_a"], linked["v1_b"]}
    assert {(o.prompt_name, o.prompt_version) for o in page.data} == {(text_name, 1)}


def test_prompt_metrics_count_the_linked_generations(
    linked: dict[str, Any], server: Server
) -> None:
    data = server.http.get(
        "/api/public/prompt-metrics", params={"name": linked["text_name"]}
    ).json()["data"]
    assert [(d["promptVersion"], d["observationCount"]) for d in data] == [(2, 1), (1, 2)]
    assert data[1]["totalInputUsage"] == 3
