"""The MCP server at /api/public/mcp: a real `tracehouse serve` and the official `mcp` client.

One server (embedded store, temporary data dir) with two projects: A from LANGFUSE_INIT_*, B
created in the store before start-up with the same helper as `tracehouse keys create`. Each test
works on prompt names of its own, so the tests do not depend on each other.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from tests.serving import serving
from tracehouse.config import Settings
from tracehouse.services.bootstrap import create_api_key
from tracehouse.store import projects as project_store
from tracehouse.store.db import make_engine, migrate

pytestmark = pytest.mark.slow

TOOLS = {"getPrompt", "listPrompts", "createTextPrompt", "createChatPrompt", "updatePromptLabels"}
READ_ONLY = {"getPrompt", "listPrompts"}


@dataclass
class Keys:
    project_id: str
    public_key: str
    secret_key: str

    @property
    def basic(self) -> str:
        token = base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        return f"Basic {token}"


@dataclass
class McpServer:
    url: str  # the MCP endpoint
    a: Keys
    b: Keys


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    data_dir: Path = tmp_path_factory.mktemp("mcp-data")
    # Project B exists before the server starts, with a key made as `tracehouse keys create` does.
    engine = make_engine(Settings(data_dir=data_dir))
    try:
        migrate(engine)
        with engine.begin() as conn:
            project_store.ensure_organization(conn, "mcp-org", "MCP")
            project_store.ensure_project(conn, "mcp-b", "mcp-org", "Project B")
        created = create_api_key(engine, "mcp-b")
    finally:
        engine.dispose()
    b = Keys("mcp-b", created.public_key, created.secret_key)
    suffix = uuid.uuid4().hex[:8]
    a = Keys("mcp-a", f"pk-lf-mcp-{suffix}", f"sk-lf-mcp-{suffix}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "TRACEHOUSE_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(
        TRACEHOUSE_DATA_DIR=str(data_dir),
        LANGFUSE_INIT_ORG_ID="mcp-org",
        LANGFUSE_INIT_ORG_NAME="MCP",
        LANGFUSE_INIT_PROJECT_ID=a.project_id,
        LANGFUSE_INIT_PROJECT_NAME="Project A",
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY=a.public_key,
        LANGFUSE_INIT_PROJECT_SECRET_KEY=a.secret_key,
    )
    with serving(env, data_dir) as url:
        yield McpServer(url=url + "/api/public/mcp", a=a, b=b)


@asynccontextmanager
async def session(url: str, authorization: str) -> AsyncIterator[ClientSession]:
    """An initialised MCP client session sending ``authorization`` on every request."""
    http = httpx2.AsyncClient(headers={"Authorization": authorization}, timeout=30)
    async with (
        http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def run(server: McpServer, scenario: Callable[[ClientSession], Awaitable[None]]) -> None:
    """Run ``scenario`` with a session of project A."""

    async def main() -> None:
        async with session(server.url, server.a.basic) as client:
            await scenario(client)

    anyio.run(main)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def call(client: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result (same as the JSON text content)."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


async def call_error(client: ClientSession, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail as a tool error; the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    texts = [c.text for c in result.content if isinstance(c, TextContent)]
    assert texts, result
    return "\n".join(texts)


# --- tools -----------------------------------------------------------------------------------


def test_lists_the_five_tools_with_annotations(server: McpServer) -> None:
    async def scenario(client: ClientSession) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for name, tool in tools.items():
            assert tool.annotations is not None, name
            assert tool.annotations.read_only_hint is (name in READ_ONLY), name
            if name not in READ_ONLY:
                assert tool.annotations.destructive_hint is False, name
            assert tool.description
        assert tools["updatePromptLabels"].annotations.idempotent_hint is True  # type: ignore[union-attr]
        assert tools["createTextPrompt"].annotations.idempotent_hint is False  # type: ignore[union-attr]
        get_schema = tools["getPrompt"].input_schema
        assert get_schema["required"] == ["name"]
        assert {"name", "label", "version"} <= set(get_schema["properties"])
        chat_schema = tools["createChatPrompt"].input_schema
        assert set(chat_schema["required"]) == {"name", "prompt"}
        assert {"labels", "config", "tags", "commitMessage"} <= set(chat_schema["properties"])
        assert set(tools["updatePromptLabels"].input_schema["required"]) == {
            "name",
            "version",
            "newLabels",
        }
        assert "cursor" in tools["listPrompts"].input_schema["properties"]

    run(server, scenario)


def test_create_text_and_chat_prompts_then_get_by_label_and_version(server: McpServer) -> None:
    text_name, chat_name = unique("mcp-text"), unique("folder/mcp-chat")

    async def scenario(client: ClientSession) -> None:
        v1 = await call(
            client,
            "createTextPrompt",
            name=text_name,
            prompt="Hello {{name}}",
            labels=["production"],
            config={"temperature": 0.2},
            tags=["greeting"],
            commitMessage="first",
        )
        assert v1["name"] == text_name
        assert v1["version"] == 1
        assert v1["type"] == "text"
        assert v1["prompt"] == "Hello {{name}}"
        assert set(v1["labels"]) == {"production", "latest"}
        assert v1["config"] == {"temperature": 0.2}
        assert v1["tags"] == ["greeting"]
        assert v1["commitMessage"] == "first"
        v2 = await call(client, "createTextPrompt", name=text_name, prompt="Hi {{name}}!")
        assert v2["version"] == 2  # versions auto-increment
        assert v2["labels"] == ["latest"]
        assert v2["tags"] == ["greeting"]  # tags apply to the prompt

        messages = [
            {"role": "system", "content": "You are {{persona}}."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{question}}"},
        ]
        chat = await call(
            client, "createChatPrompt", name=chat_name, prompt=messages, labels=["staging"]
        )
        assert chat["type"] == "chat"
        assert chat["version"] == 1
        assert chat["prompt"] == messages

        # Without label or version: the production version.
        got = await call(client, "getPrompt", name=text_name)
        assert (got["version"], got["prompt"]) == (1, "Hello {{name}}")
        got = await call(client, "getPrompt", name=text_name, label="latest")
        assert (got["version"], got["prompt"]) == (2, "Hi {{name}}!")
        got = await call(client, "getPrompt", name=text_name, version=1)
        assert got["commitMessage"] == "first"
        assert got["id"] == v1["id"]
        assert got["createdAt"] and got["updatedAt"]
        got = await call(client, "getPrompt", name=chat_name, label="staging")
        assert got["prompt"] == messages
        assert set(got["labels"]) == {"staging", "latest"}

        # Invalid content comes back as a tool error naming the problem.
        error = await call_error(
            client, "createChatPrompt", name=chat_name, prompt=[{"role": "user"}]
        )
        assert "prompt[0].content" in error
        error = await call_error(client, "createTextPrompt", name=chat_name, prompt="text now")
        assert "chat prompt" in error

    run(server, scenario)


def test_list_prompts_filters_and_cursor_paging(server: McpServer) -> None:
    tag = unique("tag")
    names = [unique(f"mcp-list-{i}") for i in range(5)]

    async def scenario(client: ClientSession) -> None:
        for i, name in enumerate(names):
            labels = ["production"] if i % 2 == 0 else []
            await call(
                client, "createTextPrompt", name=name, prompt=f"p{i}", tags=[tag], labels=labels
            )
        await call(client, "createTextPrompt", name=names[0], prompt="p0 v2")

        everything = await call(client, "listPrompts", tag=tag)
        assert sorted(p["name"] for p in everything["data"]) == sorted(names)
        assert everything["nextCursor"] is None
        assert everything["totalItems"] == 5
        first = next(p for p in everything["data"] if p["name"] == names[0])
        assert first["versions"] == [1, 2]
        assert first["type"] == "text"
        assert set(first["labels"]) == {"production", "latest"}
        assert first["tags"] == [tag]

        by_name = await call(client, "listPrompts", name=names[1])
        assert [p["name"] for p in by_name["data"]] == [names[1]]
        production = await call(client, "listPrompts", tag=tag, label="production")
        assert sorted(p["name"] for p in production["data"]) == sorted(names[0::2])
        assert next(p for p in production["data"] if p["name"] == names[0])["versions"] == [1]
        none = await call(client, "listPrompts", tag=unique("no-such-tag"))
        assert none == {"data": [], "nextCursor": None, "totalItems": 0}

        # Cursor paging: pages of 2 cover every prompt exactly once, then stop.
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            args: dict[str, Any] = {"tag": tag, "limit": 2}
            if cursor is not None:
                args["cursor"] = cursor
            page = await call(client, "listPrompts", **args)
            pages += 1
            assert len(page["data"]) <= 2
            seen += [p["name"] for p in page["data"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
            assert isinstance(cursor, str)
        assert pages == 3
        assert sorted(seen) == sorted(names)

        error = await call_error(client, "listPrompts", cursor="not-a-cursor")
        assert "cursor" in error

    run(server, scenario)


def test_update_prompt_labels_moves_labels_and_refuses_latest(server: McpServer) -> None:
    name = unique("mcp-labels")

    async def scenario(client: ClientSession) -> None:
        await call(client, "createTextPrompt", name=name, prompt="one", labels=["production"])
        await call(client, "createTextPrompt", name=name, prompt="two")
        updated = await call(
            client, "updatePromptLabels", name=name, version=2, newLabels=["production", "beta"]
        )
        assert updated["version"] == 2
        assert {"production", "beta", "latest"} == set(updated["labels"])
        # The label moved off version 1.
        v1 = await call(client, "getPrompt", name=name, version=1)
        assert "production" not in v1["labels"]
        got = await call(client, "getPrompt", name=name)
        assert (got["version"], got["prompt"]) == (2, "two")

        error = await call_error(
            client, "updatePromptLabels", name=name, version=1, newLabels=["latest"]
        )
        assert "latest" in error
        assert "latest" not in (await call(client, "getPrompt", name=name, version=1))["labels"]
        error = await call_error(
            client, "updatePromptLabels", name=name, version=9, newLabels=["beta"]
        )
        assert name in error and "version 9" in error

    run(server, scenario)


def test_unknown_prompt_is_a_tool_error_naming_it(server: McpServer) -> None:
    name = unique("mcp-missing")

    async def scenario(client: ClientSession) -> None:
        error = await call_error(client, "getPrompt", name=name)
        assert name in error
        assert "not found" in error.lower()
        error = await call_error(client, "getPrompt", name=name, version=3)
        assert name in error and "version 3" in error
        error = await call_error(client, "getPrompt", name=name, version=1, label="production")
        assert "either a label or a version" in error
        # The session is still usable after errors.
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS

    run(server, scenario)


# --- HTTP: authentication, project scoping, the endpoint itself ------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"pk-lf-nobody:sk-lf-nobody").decode(),
        "Basic not-base64!",
        "Token abc",
    ],
    ids=["missing", "unknown-key", "malformed", "unsupported-scheme"],
)
def test_missing_or_wrong_credentials_get_401(server: McpServer, authorization: str | None) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    r = httpx.post(server.url, json=INITIALIZE, headers=headers, timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "UnauthorizedError"
    assert r.json()["message"]
    assert r.headers["www-authenticate"].startswith("Basic")


def test_wrong_secret_gets_401_and_the_mcp_client_fails(server: McpServer) -> None:
    wrong = Keys(server.a.project_id, server.a.public_key, "sk-lf-wrong")
    r = httpx.post(
        server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": wrong.basic}
    )
    assert r.status_code == 401

    async def main() -> None:
        with pytest.raises(Exception):  # noqa: B017 - the client's error type is not the point
            async with session(server.url, wrong.basic):
                pass

    anyio.run(main)


def test_public_key_only_bearer_gets_403(server: McpServer) -> None:
    r = httpx.post(
        server.url,
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {server.a.public_key}"},
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "AccessDeniedError"


def test_endpoint_serves_exact_path_under_any_host_name(server: McpServer) -> None:
    headers = {**MCP_HEADERS, "Authorization": server.a.basic}
    for host in ("tracehouse.example.com", "10.1.2.3:8443", "localhost"):
        r = httpx.post(
            server.url,
            json=INITIALIZE,
            headers={**headers, "Host": host, "Origin": f"https://{host}"},
            follow_redirects=False,
        )
        assert r.status_code == 200, (host, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body["result"]["serverInfo"]["name"] == "tracehouse"
        assert "tools" in body["result"]["capabilities"]
    # Stateless: no session id to keep, and a tool call needs no prior initialize.
    assert "mcp-session-id" not in r.headers
    r = httpx.post(
        server.url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        headers={**headers, "mcp-protocol-version": "2025-06-18"},
    )
    assert r.status_code == 200, r.text
    assert {t["name"] for t in r.json()["result"]["tools"]} == TOOLS
    assert all(
        t["annotations"]["readOnlyHint"] is (t["name"] in READ_ONLY)
        for t in r.json()["result"]["tools"]
    )


def test_only_post_is_served(server: McpServer) -> None:
    headers = {"Accept": "text/event-stream", "Authorization": server.a.basic}
    for method in ("GET", "DELETE", "PUT"):
        r = httpx.request(method, server.url, headers=headers, timeout=10)
        assert r.status_code == 405, (method, r.text)
        assert r.headers["allow"] == "POST"
        assert r.json()["error"] == "MethodNotAllowedError"


def test_modern_protocol_client(server: McpServer) -> None:
    """The high-level `Client` negotiates the newest protocol (no initialize handshake)."""
    name = unique("mcp-modern")

    async def main() -> None:
        for keys in (server.a, server.b):
            async with (
                httpx2.AsyncClient(headers={"Authorization": keys.basic}, timeout=30) as http,
                Client(streamable_http_client(server.url, http_client=http)) as client,
            ):
                assert client.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                result = await client.call_tool("getPrompt", {"name": name})
                if keys is server.a:
                    assert result.is_error and name in text_of(result)
                    result = await client.call_tool(
                        "createTextPrompt", {"name": name, "prompt": "modern"}
                    )
                    assert not result.is_error, text_of(result)
                    assert result.structured_content is not None
                    assert result.structured_content["projectId"] == server.a.project_id
                    result = await client.call_tool("getPrompt", {"name": name, "version": 1})
                    assert result.structured_content is not None
                    assert result.structured_content["prompt"] == "modern"
                else:  # project B does not see A's prompt
                    assert result.is_error and name in text_of(result)

    anyio.run(main)


def test_projects_are_isolated(server: McpServer) -> None:
    name = unique("mcp-isolated")

    async def main() -> None:
        async with session(server.url, server.a.basic) as a:
            created = await call(
                a, "createTextPrompt", name=name, prompt="only A", labels=["production"]
            )
            assert created["projectId"] == server.a.project_id
            assert [p["name"] for p in (await call(a, "listPrompts", name=name))["data"]] == [name]
        async with session(server.url, server.b.basic) as b:
            error = await call_error(b, "getPrompt", name=name)
            assert name in error
            assert (await call(b, "listPrompts", name=name))["data"] == []
            error = await call_error(
                b, "updatePromptLabels", name=name, version=1, newLabels=["beta"]
            )
            assert name in error
            # B's own prompt of the same name is a separate prompt starting at version 1.
            own = await call(b, "createTextPrompt", name=name, prompt="only B")
            assert (own["version"], own["projectId"]) == (1, server.b.project_id)
        async with session(server.url, server.a.basic) as a:
            got = await call(a, "getPrompt", name=name)
            assert (got["prompt"], got["version"]) == ("only A", 1)
            assert "beta" not in got["labels"]

    anyio.run(main)
