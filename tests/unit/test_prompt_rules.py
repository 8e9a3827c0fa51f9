"""Prompt rules without a server: reference tags, resolution, variables and compilation."""

from __future__ import annotations

import pytest

from tracehouse.domain import prompts as rules
from tracehouse.domain.prompts import PromptReferenceError, Reference, StoredRef
from tracehouse.errors import InvalidInput


def test_references_are_parsed_in_order_without_duplicates():
    text = (
        "@@@langfusePrompt:name=a|label=production@@@ x "
        "@@@langfusePrompt:name=team/b|version=3@@@ "
        "@@@langfusePrompt:name=a|label=production@@@"
    )
    assert rules.references(text) == [
        Reference("@@@langfusePrompt:name=a|label=production@@@", "a", label="production"),
        Reference("@@@langfusePrompt:name=team/b|version=3@@@", "team/b", version=3),
    ]


def test_references_inside_chat_messages_are_found():
    chat = [
        {"role": "system", "content": "@@@langfusePrompt:name=s|version=1@@@"},
        {"type": "placeholder", "name": "history"},
    ]
    assert [r.name for r in rules.references(chat)] == ["s"]


def _store(*versions: StoredRef):
    by_label = {(v.name, "production"): v for v in versions}
    by_version = {(v.name, v.version): v for v in versions}

    def lookup(ref: Reference) -> StoredRef | None:
        if ref.version is not None:
            return by_version.get((ref.name, ref.version))
        return by_label.get((ref.name, ref.label))

    return lookup


def test_resolve_replaces_tags_recursively_and_builds_the_graph():
    leaf = StoredRef("L", "leaf", 2, "text", "leaf {{x}}")
    mid = StoredRef("M", "mid", 1, "text", "mid(@@@langfusePrompt:name=leaf|label=production@@@)")
    root = StoredRef("R", "root", 5, "text", "root @@@langfusePrompt:name=mid|version=1@@@!")
    prompt, graph = rules.resolve(root, _store(leaf, mid))
    assert prompt == "root mid(leaf {{x}})!"
    assert graph == {
        "root": {"id": "R", "name": "root", "version": 5},
        "dependencies": {
            "R": [{"id": "M", "name": "mid", "version": 1}],
            "M": [{"id": "L", "name": "leaf", "version": 2}],
        },
    }


def test_a_prompt_without_references_has_no_graph():
    root = StoredRef("R", "root", 1, "text", "plain {{var}}")
    assert rules.resolve(root, _store()) == ("plain {{var}}", None)


def test_cycles_are_refused_with_the_path():
    a = StoredRef("A", "a", 1, "text", "@@@langfusePrompt:name=b|label=production@@@")
    b = StoredRef("B", "b", 1, "text", "@@@langfusePrompt:name=a|label=production@@@")
    with pytest.raises(
        PromptReferenceError, match="circular prompt references: a v1 -> b v1 -> a v1"
    ):
        rules.resolve(a, _store(a, b))


def test_another_version_of_the_same_prompt_is_not_a_cycle():
    old = StoredRef("A1", "a", 1, "text", "old")
    new = StoredRef("A2", "a", 2, "text", "new + @@@langfusePrompt:name=a|version=1@@@")
    assert rules.resolve(new, _store(old, new))[0] == "new + old"


def test_nesting_is_bounded():
    chain = [
        StoredRef(f"P{i}", f"p{i}", 1, "text", f"@@@langfusePrompt:name=p{i + 1}|version=1@@@")
        for i in range(rules.MAX_NESTING + 3)
    ]
    with pytest.raises(PromptReferenceError, match="deeper than"):
        rules.resolve(chain[0], _store(*chain))


def test_variables_and_placeholders_are_listed():
    chat = [
        {"role": "system", "content": "Hi {{ name }}, about {{topic}} and {{name}}"},
        {"type": "placeholder", "name": "history"},
    ]
    assert rules.variables(chat) == ["name", "topic"]
    assert rules.placeholders(chat) == ["history"]
    assert rules.placeholders("text") == []


def test_compile_fills_variables_and_expands_placeholders():
    chat = [
        {"role": "system", "content": "You are an {{level}} critic of {{genre}}"},
        {"type": "placeholder", "name": "history"},
        {"type": "placeholder", "name": "unfilled"},
        {"role": "user", "content": "Next?"},
    ]
    out = rules.compile_prompt(
        chat,
        {"level": "expert"},
        {
            "history": [
                {"role": "user", "content": "Baraka"},
                {"role": "user", "content": "Memories"},
            ]
        },
    )
    assert out == [
        {"role": "system", "content": "You are an expert critic of {{genre}}"},
        {"role": "user", "content": "Baraka"},
        {"role": "user", "content": "Memories"},
        {"type": "placeholder", "name": "unfilled"},
        {"role": "user", "content": "Next?"},
    ]
    assert rules.compile_prompt("Rate {{movie}}", {"movie": 7}) == "Rate 7"


def test_create_request_defaults():
    parsed = rules.parse_create({"name": "folder/p", "prompt": [{"role": "user", "content": "x"}]})
    assert parsed.type == "chat"  # a list without a type is a chat prompt
    assert parsed.config == {} and parsed.labels == [] and parsed.tags is None
    parsed = rules.parse_create(
        {"name": "p", "prompt": "x", "labels": ["a", "a"], "tags": ["t", "t"]}
    )
    assert parsed.labels == ["a"] and parsed.tags == ["t"]


def test_the_latest_label_is_reserved():
    with pytest.raises(InvalidInput, match="latest"):
        rules.check_labels(["latest"])
    assert rules.check_label("latest", allow_latest=True) == "latest"


def test_the_prompt_cache_is_bounded_by_entries_and_bytes():
    from tracehouse.services.prompts import PromptCache

    cache = PromptCache(max_entries=3, max_bytes=1000)
    for i in range(5):
        cache.put(("p", f"n{i}", "production", None), 1, b"x" * 10)
    assert [cache.get(("p", f"n{i}", "production", None), 1) is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    cache.put(("p", "big", "production", None), 1, b"x" * 95)
    cache.put(("p", "too-big", "production", None), 1, b"x" * 101)  # over a tenth: not kept
    assert cache.get(("p", "too-big", "production", None), 1) is None
    assert cache.get(("p", "big", "production", None), 2) is None  # another generation
    assert cache.size_bytes <= 1000
