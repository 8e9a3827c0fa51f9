"""Prompts as data: validation of a new version, reference tags, variables and compilation.

Pure functions, no I/O. A prompt version is text (a string) or chat (a list of messages, some of
which may be placeholders for a list of messages supplied at compile time). Text anywhere in a
prompt may reference another *text* prompt with a tag ``@@@langfusePrompt:name=N|label=L@@@`` (or
``|version=V``); the server replaces tags by the referenced prompt when serving.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracehouse.errors import InvalidInput

LATEST = "latest"
PRODUCTION = "production"
MAX_NAME_CHARS = 255
MAX_LABEL_CHARS = 36
MAX_NESTING = 8
"""References resolve at most this deep (a chain of prompts referencing prompts)."""

_LABEL = re.compile(r"[a-z0-9_.\-]+")
_PLACEHOLDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TAG = re.compile(r"@@@langfusePrompt:(.*?)@@@", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PromptReferenceError(InvalidInput):
    """A reference tag that cannot be resolved: unknown target, cycle, chat target, too deep."""

    def __init__(self, message: str) -> None:
        super().__init__("prompt", message)


@dataclass(frozen=True)
class Reference:
    """One ``@@@langfusePrompt:…@@@`` tag: the target by name and either label or version."""

    tag: str
    name: str
    label: str | None = None
    version: int | None = None

    def describe(self) -> str:
        which = f"version {self.version}" if self.version is not None else f"label {self.label!r}"
        return f"{self.name!r} ({which})"


@dataclass
class NewVersion:
    """A validated create request (before a version number is given)."""

    name: str
    type: str
    prompt: Any
    config: dict[str, Any]
    labels: list[str]
    tags: list[str] | None
    commit_message: str | None
    references: list[Reference] = field(default_factory=list)


# --- names, labels, tags -------------------------------------------------------------------


def check_name(name: Any, field_name: str = "name") -> str:
    """A prompt name: folders are slash-separated segments, none of them empty."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(field_name, "must be a non-empty string")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(field_name, f"must be at most {MAX_NAME_CHARS} characters")
    if _CONTROL.search(name):
        raise InvalidInput(field_name, "must not contain control characters")
    if "|" in name or "@@@" in name:
        raise InvalidInput(field_name, "must not contain '|' or '@@@' (reference tag syntax)")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidInput(
            field_name, "folder names are slash-separated and no segment may be empty"
        )
    return name


def check_label(label: Any, field_name: str = "labels", *, allow_latest: bool = False) -> str:
    if not isinstance(label, str) or not label:
        raise InvalidInput(field_name, "each label must be a non-empty string")
    if len(label) > MAX_LABEL_CHARS or not _LABEL.fullmatch(label):
        raise InvalidInput(
            field_name,
            f"label {label!r} must be 1-{MAX_LABEL_CHARS} lowercase letters, digits, "
            "'_', '-' or '.'",
        )
    if label == LATEST and not allow_latest:
        raise InvalidInput(
            field_name, "the 'latest' label is managed by the server and cannot be set"
        )
    return label


def check_labels(labels: Any, field_name: str = "labels") -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, list):
        raise InvalidInput(field_name, "must be a list of strings")
    out: list[str] = []
    for label in labels:
        if check_label(label, field_name) not in out:
            out.append(label)
    return out


def check_tags(tags: Any, field_name: str = "tags") -> list[str] | None:
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise InvalidInput(field_name, "must be a list of non-empty strings")
    return list(dict.fromkeys(tags))


# --- content -------------------------------------------------------------------------------


def _check_chat(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise InvalidInput("prompt", "a chat prompt is a list of messages")
    out: list[dict[str, Any]] = []
    placeholders: set[str] = set()
    for i, message in enumerate(messages):
        where = f"prompt[{i}]"
        if not isinstance(message, dict):
            raise InvalidInput(where, "each message must be an object")
        if message.get("type") == "placeholder":
            name = message.get("name")
            if not isinstance(name, str) or not _PLACEHOLDER_NAME.fullmatch(name):
                raise InvalidInput(
                    f"{where}.name",
                    "a placeholder needs a name that starts with a letter and has only "
                    "letters, digits and '_'",
                )
            if name in placeholders:
                raise InvalidInput(f"{where}.name", f"placeholder {name!r} appears twice")
            placeholders.add(name)
            out.append({"type": "placeholder", "name": name})
            continue
        kind = message.get("type")
        if kind not in (None, "chatmessage"):
            raise InvalidInput(f"{where}.type", "must be 'chatmessage' or 'placeholder'")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise InvalidInput(f"{where}.role", "must be a non-empty string")
        if not isinstance(content, str):
            raise InvalidInput(f"{where}.content", "must be a string")
        out.append({"role": role, "content": content})
    return out


def check_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidInput("config", 'must be a JSON object (e.g. {"temperature": 0.2})')
    return config


def parse_create(body: Any) -> NewVersion:
    """Validate a ``CreatePromptRequest`` (text or chat); 400 naming the field otherwise."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    name = check_name(body.get("name"))
    kind = body.get("type")
    prompt = body.get("prompt")
    if kind is None:
        kind = "chat" if isinstance(prompt, list) else "text"
    if kind not in ("text", "chat"):
        raise InvalidInput("type", "must be 'text' or 'chat'")
    if kind == "text":
        if not isinstance(prompt, str):
            raise InvalidInput("prompt", "a text prompt is a string")
    else:
        prompt = _check_chat(prompt)
    commit = body.get("commitMessage")
    if commit is not None and not isinstance(commit, str):
        raise InvalidInput("commitMessage", "must be a string")
    version = NewVersion(
        name=name,
        type=kind,
        prompt=prompt,
        config=check_config(body.get("config")),
        labels=check_labels(body.get("labels")),
        tags=check_tags(body.get("tags")),
        commit_message=commit,
    )
    version.references = references(prompt)
    return version


# --- references ----------------------------------------------------------------------------


def _texts(prompt: Any) -> Iterator[str]:
    if isinstance(prompt, str):
        yield prompt
    elif isinstance(prompt, list):
        for message in prompt:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                yield content


def _parse_tag(tag: str, body: str) -> Reference:
    params: dict[str, str] = {}
    for part in body.split("|"):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value or key in params:
            raise PromptReferenceError(
                f"malformed reference tag {tag!r}: expected "
                "@@@langfusePrompt:name=NAME|label=LABEL@@@ or …|version=N@@@"
            )
        params[key] = value
    unknown = set(params) - {"name", "label", "version"}
    if unknown or "name" not in params or ("label" in params) == ("version" in params):
        raise PromptReferenceError(
            f"reference tag {tag!r} needs a name and exactly one of label and version"
        )
    version: int | None = None
    if "version" in params:
        if not params["version"].isdigit() or int(params["version"]) < 1:
            raise PromptReferenceError(f"reference tag {tag!r}: version must be a number >= 1")
        version = int(params["version"])
    return Reference(tag=tag, name=params["name"], label=params.get("label"), version=version)


def references(prompt: Any) -> list[Reference]:
    """Every distinct reference tag in a prompt's text, in order of appearance."""
    seen: dict[str, Reference] = {}
    for text in _texts(prompt):
        for match in _TAG.finditer(text):
            if match.group(0) not in seen:
                seen[match.group(0)] = _parse_tag(match.group(0), match.group(1))
    return list(seen.values())


def substitute(prompt: Any, replacements: Mapping[str, str]) -> Any:
    """The prompt with each reference tag replaced by its resolved text."""

    def one(text: str) -> str:
        return _TAG.sub(lambda m: replacements[m.group(0)], text)

    if isinstance(prompt, str):
        return one(prompt)
    return [
        {**m, "content": one(m["content"])} if isinstance(m.get("content"), str) else m
        for m in prompt
    ]


@dataclass(frozen=True)
class StoredRef:
    """What the resolver needs to know about a stored version."""

    id: str
    name: str
    version: int
    type: str
    prompt: Any


def resolve(
    root: StoredRef,
    lookup: Callable[[Reference], StoredRef | None],
) -> tuple[Any, dict[str, Any] | None]:
    """Replace every reference tag (recursively) and return ``(prompt, resolution_graph)``.

    ``lookup`` finds the version a reference points at (None: missing). A reference to a chat
    prompt, to a missing prompt, a cycle or nesting past ``MAX_NESTING`` is a 400. The graph is
    None when the prompt references nothing.
    """
    edges: dict[str, list[dict[str, Any]]] = {}
    memo: dict[str, str] = {}

    def expand(node: StoredRef, path: tuple[str, ...]) -> Any:
        refs = references(node.prompt)
        if not refs:
            return node.prompt
        if len(path) > MAX_NESTING:
            raise PromptReferenceError(
                f"references nest deeper than {MAX_NESTING} levels at {node.name!r}"
            )
        replacements: dict[str, str] = {}
        for ref in refs:
            target = lookup(ref)
            if target is None:
                raise PromptReferenceError(
                    f"prompt {node.name!r} references {ref.describe()}, which does not exist"
                )
            if target.type != "text":
                raise PromptReferenceError(
                    f"prompt {node.name!r} references {ref.describe()}, a chat prompt; "
                    "only text prompts can be referenced"
                )
            if target.id in path:
                loop = [*path[path.index(target.id) :], target.id]
                cycle = " -> ".join(f"{names[i]}" for i in loop)
                raise PromptReferenceError(f"circular prompt references: {cycle}")
            names[target.id] = f"{target.name} v{target.version}"
            edges.setdefault(node.id, [])
            child = {"id": target.id, "name": target.name, "version": target.version}
            if child not in edges[node.id]:
                edges[node.id].append(child)
            if target.id not in memo:
                memo[target.id] = expand(target, (*path, target.id))
            replacements[ref.tag] = memo[target.id]
        return substitute(node.prompt, replacements)

    names: dict[str, str] = {root.id: f"{root.name} v{root.version}"}
    resolved = expand(root, (root.id,))
    if not edges:
        return resolved, None
    graph = {
        "root": {"id": root.id, "name": root.name, "version": root.version},
        "dependencies": edges,
    }
    return resolved, graph


# --- variables and compilation ---------------------------------------------------------------


def variables(prompt: Any) -> list[str]:
    """The ``{{variable}}`` names of a prompt, in order of first appearance."""
    seen: dict[str, None] = {}
    for text in _texts(prompt):
        for match in _VARIABLE.finditer(text):
            seen.setdefault(match.group(1), None)
    return list(seen)


def placeholders(prompt: Any) -> list[str]:
    if not isinstance(prompt, list):
        return []
    return [m["name"] for m in prompt if isinstance(m, dict) and m.get("type") == "placeholder"]


def compile_prompt(
    prompt: Any,
    values: Mapping[str, Any] | None = None,
    fill: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
) -> Any:
    """Fill ``{{variables}}`` (missing ones stay as written) and expand placeholders.

    A placeholder without a value stays in the output as it is, as the SDKs do, so a caller
    can see what is still open.
    """
    values = values or {}

    def text(s: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            return str(values[name]) if name in values else m.group(0)

        return _VARIABLE.sub(sub, s)

    if isinstance(prompt, str):
        return text(prompt)
    out: list[Any] = []
    for message in prompt:
        if message.get("type") == "placeholder":
            supplied = (fill or {}).get(message["name"])
            if supplied is None:
                out.append(message)
            else:
                out.extend(dict(m) for m in supplied)
        else:
            out.append({**message, "content": text(message["content"])})
    return out
