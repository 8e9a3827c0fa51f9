"""The MCP server's tools (Langfuse's prompt-management tools) on the official ``mcp`` package.

Imported on the first request to ``/api/public/mcp`` (see ``api/mcp.py``): the package is about
a fifth of an idle process's memory, which a server that never serves MCP need not carry.

Streamable HTTP, stateless and with JSON replies (no sessions to keep, so it works behind any
number of API processes), built on the official ``mcp`` package. Every request is authenticated
here, before the MCP transport sees it, with the same project keys as the rest of
``/api/public/*`` (HTTP Basic ``public_key:secret_key``): missing or bad credentials get 401, a
Bearer public key (scores-only access) gets 403. The caller's project id travels to the tools in
the ASGI scope of the request (``ctx.request_context.request.scope``), so every tool works on
the caller's project only.

The tools call ``PromptService`` (the same use cases as ``/api/public/v2/prompts``); its errors
come back as tool errors (``isError: true`` with the message), not as protocol failures.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field

from .. import __version__
from ..domain.prompts import check_label, check_name
from ..errors import InvalidInput, TracehouseError
from .deps import Services
from .mcp import MCP_PATH, PROJECT_KEY
from .prompts import PROMPT_BODY_LIMIT, list_filters

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

_READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
_CREATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
_SET_LABELS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

T = TypeVar("T")

# --- tool arguments ------------------------------------------------------------------------

Name = Annotated[str, Field(description="The prompt name (folders are '/'-separated).")]
Labels = Annotated[
    list[str] | None,
    Field(
        description="Labels for the new version, e.g. ['production']. A label is unique per "
        "prompt: it moves off the version that had it. 'latest' is set by the server."
    ),
]
Config = Annotated[
    dict[str, Any] | None,
    Field(description='Free-form JSON config, e.g. {"model": "gpt-4o", "temperature": 0.2}.'),
]
Tags = Annotated[
    list[str] | None,
    Field(description="Tags; they apply to every version of the prompt."),
]
CommitMessage = Annotated[str | None, Field(description="What changed in this version.")]


def _project_id(ctx: Context) -> str:
    """The caller's project, set on the request's scope by ``McpEndpoint``."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    project_id = scope.get(PROJECT_KEY) if isinstance(scope, dict) else None
    if not isinstance(project_id, str):  # pragma: no cover - every request is authenticated
        raise ToolError("Unauthorized: this request carries no project")
    return project_id


async def _guarded(call: Callable[[], Awaitable[T]]) -> T:
    """Run a use case; a tracehouse error becomes a tool error carrying its message."""
    try:
        return await call()
    except TracehouseError as exc:
        raise ToolError(exc.message) from exc


def _encode_cursor(page: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"page": page})).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        page = orjson.loads(raw)["page"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise InvalidInput("cursor", "is not a cursor returned by listPrompts") from None
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise InvalidInput("cursor", "is not a cursor returned by listPrompts")
    return page


# --- the server ----------------------------------------------------------------------------


def build_server(services: Services) -> MCPServer:
    """The MCP server with the five prompt tools, working on ``services.prompts``."""
    prompts = services.prompts
    # MCPServer() calls logging.basicConfig(); the host application owns logging, so undo it.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server: MCPServer = MCPServer(
        "tracehouse",
        title="tracehouse prompt management",
        version=__version__,
        instructions=(
            "Manage the prompts of the project your API key belongs to: fetch and list them, "
            "create text or chat versions, and move labels (such as 'production') between "
            "versions."
        ),
    )
    root.handlers[:] = handlers
    root.setLevel(level)

    @server.tool(
        name="getPrompt",
        title="Get prompt",
        description=(
            "Fetch a prompt by name, by label or by version (not both; without either, the "
            "version labelled 'production'). Returns the prompt (text, or chat messages) with "
            "its metadata: version, labels, tags, config, commit message, timestamps. "
            "References to other prompts are resolved unless resolve is false."
        ),
        annotations=_READ,
    )
    async def get_prompt(
        ctx: Context,
        name: Name,
        label: Annotated[
            str | None, Field(description="The label to fetch, e.g. 'production' or 'latest'.")
        ] = None,
        version: Annotated[int | None, Field(description="The version number to fetch.")] = None,
        resolve: Annotated[
            bool, Field(description="Replace references to other prompts with their content.")
        ] = True,
    ) -> dict[str, Any]:
        project_id = _project_id(ctx)

        async def call() -> dict[str, Any]:
            check_name(name)
            if label is not None:
                check_label(label, "label", allow_latest=True)
            return await anyio.to_thread.run_sync(
                lambda: prompts.get(project_id, name, version=version, label=label, resolve=resolve)
            )

        return await _guarded(call)

    @server.tool(
        name="listPrompts",
        title="List prompts",
        description=(
            "List the project's prompts: one entry per name with its type, versions, labels, "
            "tags, last config and last update. Filter by name, label, tag or update time. "
            "Paginated: pass the nextCursor of a reply as cursor to get the next page "
            "(nextCursor is null on the last page)."
        ),
        annotations=_READ,
    )
    async def list_prompts(
        ctx: Context,
        name: Annotated[str | None, Field(description="Only the prompt with this name.")] = None,
        label: Annotated[str | None, Field(description="Only versions with this label.")] = None,
        tag: Annotated[str | None, Field(description="Only prompts with this tag.")] = None,
        fromUpdatedAt: Annotated[  # noqa: N803 - Langfuse's argument names
            str | None, Field(description="Only versions updated at or after (ISO 8601).")
        ] = None,
        toUpdatedAt: Annotated[  # noqa: N803
            str | None, Field(description="Only versions updated before (ISO 8601).")
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=MAX_PAGE_SIZE, description="Prompts per page.")
        ] = DEFAULT_PAGE_SIZE,
        cursor: Annotated[
            str | None, Field(description="The nextCursor of the previous page.")
        ] = None,
    ) -> dict[str, Any]:
        project_id = _project_id(ctx)

        async def call() -> dict[str, Any]:
            page = 1 if cursor is None else _decode_cursor(cursor)
            filters = list_filters(name, label, tag, fromUpdatedAt, toUpdatedAt)
            data, total = await anyio.to_thread.run_sync(
                lambda: prompts.list(project_id, filters, page, limit)
            )
            more = page * limit < total
            return {
                "data": data,
                "nextCursor": _encode_cursor(page + 1) if more else None,
                "totalItems": total,
            }

        return await _guarded(call)

    async def create(
        ctx: Context,
        kind: str,
        name: str,
        prompt: Any,
        labels: list[str] | None,
        config: dict[str, Any] | None,
        tags: list[str] | None,
        commit_message: str | None,
    ) -> dict[str, Any]:
        project_id = _project_id(ctx)
        body = {
            "type": kind,
            "name": name,
            "prompt": prompt,
            "labels": labels,
            "config": config,
            "tags": tags,
            "commitMessage": commit_message,
        }
        return await _guarded(lambda: prompts.create(project_id, body))

    @server.tool(
        name="createTextPrompt",
        title="Create text prompt",
        description=(
            "Create a new version of a text prompt (version 1 if the name is new; versions "
            "increment). Use {{variable}} for variables. Optional labels (e.g. ['production']), "
            "config, tags and commitMessage. Returns the created version."
        ),
        annotations=_CREATE,
    )
    async def create_text_prompt(
        ctx: Context,
        name: Name,
        prompt: Annotated[
            str, Field(description="The prompt text, with {{variable}} placeholders.")
        ],
        labels: Labels = None,
        config: Config = None,
        tags: Tags = None,
        commitMessage: CommitMessage = None,  # noqa: N803 - Langfuse's argument name
    ) -> dict[str, Any]:
        return await create(ctx, "text", name, prompt, labels, config, tags, commitMessage)

    @server.tool(
        name="createChatPrompt",
        title="Create chat prompt",
        description=(
            "Create a new version of a chat prompt (version 1 if the name is new; versions "
            "increment). The prompt is a list of OpenAI-style messages "
            '{"role": "system"|"user"|"assistant"|..., "content": "..."} and placeholders '
            '{"type": "placeholder", "name": "history"} where a list of messages is inserted '
            "at compile time. Use {{variable}} for variables in content. Optional labels, "
            "config, tags and commitMessage. Returns the created version."
        ),
        annotations=_CREATE,
    )
    async def create_chat_prompt(
        ctx: Context,
        name: Name,
        prompt: Annotated[
            list[dict[str, Any]],
            Field(
                description='Messages {"role": ..., "content": ...} and placeholders '
                '{"type": "placeholder", "name": ...}.'
            ),
        ],
        labels: Labels = None,
        config: Config = None,
        tags: Tags = None,
        commitMessage: CommitMessage = None,  # noqa: N803 - Langfuse's argument name
    ) -> dict[str, Any]:
        return await create(ctx, "chat", name, prompt, labels, config, tags, commitMessage)

    @server.tool(
        name="updatePromptLabels",
        title="Update prompt labels",
        description=(
            "Set labels on one version of a prompt, e.g. promote version 3 to ['production']. "
            "Labels are unique per prompt: each moves off the version that had it. The "
            "'latest' label is managed by the server and cannot be set. Returns the version."
        ),
        annotations=_SET_LABELS,
    )
    async def update_prompt_labels(
        ctx: Context,
        name: Name,
        version: Annotated[int, Field(ge=1, description="The version to label.")],
        newLabels: Annotated[  # noqa: N803 - Langfuse's argument name
            list[str], Field(description="Labels to put on this version.")
        ],
    ) -> dict[str, Any]:
        project_id = _project_id(ctx)

        async def call() -> dict[str, Any]:
            check_name(name)
            return await prompts.set_labels(project_id, name, version, newLabels)

        return await _guarded(call)

    return server


def new_manager(services: Services) -> StreamableHTTPSessionManager:
    """A session manager serving the tools at ``MCP_PATH``: stateless, JSON replies."""
    server = build_server(services)
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        max_request_body_size=PROMPT_BODY_LIMIT,
        # tracehouse is served under any host name and every request carries credentials,
        # so the Host/Origin allow-list (DNS-rebinding protection) is off.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server.session_manager
