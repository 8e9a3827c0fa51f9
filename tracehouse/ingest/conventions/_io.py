"""Input and output of a span: the first producer that has any wins (Langfuse's order)."""

from __future__ import annotations

import json
from typing import Any

from . import genai, langfuse, logfire, openinference, openllmetry, others, vercel_ai
from ._span import AttributeNames, SpanView, first_present, json_value, to_text, truthy

MAX_UNFLATTEN_SLOTS = 10_001

# Keys consumed as I/O or metadata: never repeated in ``metadata.attributes``.
CONSUMED_KEYS = frozenset(
    {
        *langfuse.IO_KEYS, *genai.IO_KEYS, *openinference.IO_KEYS, *openllmetry.IO_KEYS,
        *logfire.IO_KEYS, *vercel_ai.IO_KEYS, *others.IO_KEYS,
    }
)  # fmt: skip
CONSUMED_PREFIXES = (
    *genai.IO_PREFIXES,
    *openinference.IO_PREFIXES,
    *vercel_ai.IO_PREFIXES,
    "langfuse.trace.metadata",
    "langfuse.observation.metadata",
    "langfuse.experiment.",
)

# Producers whose I/O sits in one attribute pair: (input keys, output keys), first present wins.
_SIMPLE_IO_STEPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (others.ADK_INPUT, others.ADK_OUTPUT),
    ((logfire.INPUT,), (logfire.OUTPUT,)),
    (others.LIVEKIT_INPUT, others.LIVEKIT_OUTPUT),
)
_SIMPLE_IO_STEPS_AFTER_EVENTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    ((others.MLFLOW_INPUT,), (others.MLFLOW_OUTPUT,)),
    ((openllmetry.INPUT,), (openllmetry.OUTPUT,)),
    ((openinference.INPUT,), (openinference.OUTPUT,)),
    ((logfire.PLAIN_INPUT,), (logfire.PLAIN_OUTPUT,)),
)

IO = tuple[Any, Any]


def _adk_value(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "{}":
            return value
    return None


def with_system_instructions(messages: Any, instructions: Any) -> Any:
    """Put ``gen_ai.system_instructions`` first unless the messages already have a system one."""
    if instructions is None or messages is None:
        return messages
    as_text = isinstance(messages, str)
    parsed = messages
    if as_text:
        try:
            parsed = json.loads(messages)
        except ValueError:
            return messages
    if not isinstance(parsed, list):
        return messages
    if any(isinstance(m, dict) and m.get("role") == "system" for m in parsed):
        return messages
    if isinstance(instructions, str):
        try:
            decoded = json.loads(instructions)
            instructions = decoded if isinstance(decoded, list) else instructions
        except ValueError:
            pass
    if isinstance(instructions, list):
        instructions = "\n".join(
            to_text(p.get("content")) if isinstance(p, dict) and "content" in p else to_text(p)
            for p in instructions
        )
    result = [{"role": "system", "content": instructions}, *parsed]
    return to_text(result) if as_text else result


def unflatten(attrs: dict[str, Any], prefix: str) -> Any:
    """Rebuild ``prefix.0.role``-style keys into lists/objects (numeric segments are indexes)."""
    root: dict[str, Any] = {}
    budget = MAX_UNFLATTEN_SLOTS
    dotted = prefix + "."
    for key, value in attrs.items():
        if not key.startswith(dotted):
            continue
        parts = key[len(dotted) :].split(".")
        if any(p in ("__proto__", "constructor", "prototype") or not p for p in parts):
            continue
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
            budget -= 1
            if budget <= 0:
                break
    return _lists(root) if root else None


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        size = max(int(k) for k in node) + 1
        if size <= MAX_UNFLATTEN_SLOTS:
            out: list[Any] = [None] * size
            for k, v in node.items():
                out[int(k)] = _lists(v)
            return out
    return {k: _lists(v) for k, v in node.items()}


def _genai_attributes_io(attrs: dict[str, Any]) -> IO:
    instructions = attrs.get(genai.SYSTEM_INSTRUCTIONS)
    messages = attrs.get(genai.INPUT_MESSAGES)
    inp = (
        with_system_instructions(messages, instructions)
        if messages is not None
        else attrs.get(genai.TOOL_ARGUMENTS)
    )
    out = first_present(attrs, (genai.OUTPUT_MESSAGES, genai.TOOL_RESULT))
    return inp, out


def _vercel_io(span: SpanView) -> IO:
    attrs = span.attributes
    inp = first_present(attrs, vercel_ai.INPUT_KEYS)
    text = attrs.get(vercel_ai.RESPONSE_TEXT)
    calls = attrs.get(vercel_ai.RESPONSE_TOOL_CALLS)
    out: Any
    if text is not None and calls is not None:
        try:
            tool_calls = json.loads(calls) if isinstance(calls, str) else calls
        except ValueError:
            tool_calls = calls
        message = {"role": "assistant", "content": text, "tool_calls": tool_calls}
        out = to_text(message)
    elif truthy(text):
        out = text
    else:
        out = first_present(attrs, vercel_ai.OUTPUT_KEYS)
    if inp is None or out is None:
        fallback_in, fallback_out = _genai_attributes_io(attrs)
        inp = fallback_in if inp is None else inp
        out = fallback_out if out is None else out
    return inp, out


def _event_io(span: SpanView) -> IO | None:
    for name, attrs in span.events:
        if name == genai.DETAILS_EVENT:
            return _genai_attributes_io(attrs)
    inputs: list[Any] = []
    choices: list[Any] = []
    for name, attrs in span.events:
        role = genai.MESSAGE_EVENTS.get(name)
        if role is not None:
            inputs.append({"role": role, **attrs})
        elif name == genai.CHOICE_EVENT:
            choices.append(dict(attrs))
    if not inputs and not choices:
        return None
    out: Any = choices[0] if len(choices) == 1 else (choices or None)
    return (inputs or None), out


def _logfire_events_io(attrs: dict[str, Any]) -> IO | None:
    events = attrs.get(logfire.EVENTS)
    if isinstance(events, str):
        try:
            events = json.loads(events)
        except ValueError:
            return None
    if not isinstance(events, list):
        return None
    inputs = [
        e for e in events if not (isinstance(e, dict) and e.get("event.name") == "gen_ai.choice")
    ]
    outputs = [e for e in events if isinstance(e, dict) and e.get("event.name") == "gen_ai.choice"]
    return (inputs or None), (outputs[0] if outputs else None)


def _genkit_io(attrs: dict[str, Any]) -> IO:
    inp = json_value(attrs.get(others.GENKIT_INPUT))
    out = json_value(attrs.get(others.GENKIT_OUTPUT))
    if isinstance(inp, dict) and "messages" in inp:
        inp = inp["messages"]
    if isinstance(out, dict) and "message" in out:
        out = out["message"]
    return inp, out


def _semantic_kernel_io(span: SpanView) -> IO | None:
    """Legacy Semantic Kernel: prompt/completion events, their attributes read like a span's."""
    inp = out = None
    for name, attrs in span.events:
        if name not in (others.SK_PROMPT_EVENT, others.SK_COMPLETION_EVENT):
            continue
        inner = observation_io(
            SpanView(name=span.name, start_time=span.start_time, attributes=attrs)
        )
        if name == others.SK_PROMPT_EVENT and inp is None:
            inp = inner[0] if inner[0] is not None else dict(attrs)
        elif name == others.SK_COMPLETION_EVENT and out is None:
            out = inner[1] if inner[1] is not None else dict(attrs)
    return None if inp is None and out is None else (inp, out)


_FLATTENED_IO = (
    (genai.PROMPT_PREFIX, genai.COMPLETION_PREFIX),
    (openinference.INPUT_MESSAGES_PREFIX, openinference.OUTPUT_MESSAGES_PREFIX),
)
_FLATTENED_IO_PREFIXES = tuple(prefix for pair in _FLATTENED_IO for prefix in pair)


_Steps = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]


def _io_plan(names: tuple[str, ...]) -> tuple[_Steps, _Steps, bool]:
    """Of the probes below, those a span with these attribute names can answer: the simple
    steps with any of their keys among the names, and whether any name is a flattened
    ``gen_ai.prompt*``-style key. A step none of whose keys is there finds nothing."""
    present = frozenset(names)

    def answerable(steps: _Steps) -> _Steps:
        return tuple(
            s for s in steps if not (present.isdisjoint(s[0]) and present.isdisjoint(s[1]))
        )

    flattened = any(name.startswith(_FLATTENED_IO_PREFIXES) for name in names)
    return answerable(_SIMPLE_IO_STEPS), answerable(_SIMPLE_IO_STEPS_AFTER_EVENTS), flattened


def observation_io(span: SpanView, names: AttributeNames | None = None) -> IO:
    """Input and output of the observation: the first producer that has any wins
    (``names``: the span's remembered attribute names, if known)."""
    attrs = span.attributes
    steps, steps_after_events, flattened = (
        names.remembered("io", _io_plan) if names is not None else _io_plan(tuple(attrs))
    )
    inp, out = json_value(attrs.get(langfuse.INPUT)), json_value(attrs.get(langfuse.OUTPUT))
    if inp is not None or out is not None:
        return inp, out
    if span.scope_name == others.GENKIT_SCOPE:
        return _genkit_io(attrs)
    if span.scope_name == vercel_ai.SCOPE:
        return _vercel_io(span)
    if span.scope_name == others.FLUE_SCOPE:
        inp = json_value(first_present(attrs, others.FLUE_INPUT))
        out = first_present(attrs, others.FLUE_OUTPUT)
        if inp is not None or out is not None:
            return inp, out
    found = _event_io(span) or _semantic_kernel_io(span)
    if found is not None:
        return found
    for in_keys, out_keys in steps:
        if in_keys is others.ADK_INPUT:
            inp, out = _adk_value(attrs, in_keys), _adk_value(attrs, out_keys)
        else:
            inp, out = first_present(attrs, in_keys), first_present(attrs, out_keys)
        if inp is not None or out is not None:
            return inp, out
    found = _logfire_events_io(attrs)
    if found is not None and found != (None, None):
        return found
    for in_keys, out_keys in steps_after_events:
        inp, out = first_present(attrs, in_keys), first_present(attrs, out_keys)
        if inp is not None or out is not None:
            return inp, out
    if span.scope_name == others.PYDANTIC_AI_SCOPE:
        messages = attrs.get(others.PYDANTIC_AI_MESSAGES)
        inp = with_system_instructions(messages, attrs.get(genai.SYSTEM_INSTRUCTIONS))
        out = attrs.get(others.PYDANTIC_AI_RESULT)
        if inp is not None or out is not None:
            return inp, out
    inp = attrs.get(others.PYDANTIC_AI_TOOL_INPUT)
    out = attrs.get(others.PYDANTIC_AI_TOOL_OUTPUT)
    if inp is not None or out is not None:
        return inp, out
    for in_prefix, out_prefix in _FLATTENED_IO if flattened else ():
        inp = attrs[in_prefix] if in_prefix in attrs else unflatten(attrs, in_prefix)
        out = attrs[out_prefix] if out_prefix in attrs else unflatten(attrs, out_prefix)
        if inp is not None or out is not None:
            return inp, out
    return _genai_attributes_io(attrs)
