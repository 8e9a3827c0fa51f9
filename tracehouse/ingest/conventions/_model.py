"""Model name, model parameters, usage, cost and prompt link of a span."""

from __future__ import annotations

import json
from typing import Any

from tracehouse.domain.usage import as_count, cost_details_from_object, usage_details_from_object

from . import genai, langfuse, openinference, openllmetry, others, vercel_ai
from ._span import (
    AttributeNames,
    SpanView,
    first_present,
    first_truthy,
    json_object,
    json_value,
    parse_time,
    stripped_names,
    to_text,
    truthy,
)

_MODEL_KEYS = (
    langfuse.MODEL,
    genai.RESPONSE_MODEL,
    vercel_ai.MODEL_ID,
    genai.REQUEST_MODEL,
    openllmetry.RESPONSE_MODEL,
    openinference.MODEL_NAME,
    others.PLAIN_MODEL,
)


def _is_vercel_agent(attrs: dict[str, Any]) -> bool:
    return attrs.get(genai.OPERATION) in vercel_ai.AGENT_OPERATIONS


def model_name(span: SpanView) -> str | None:
    attrs = span.attributes
    if _is_vercel_agent(attrs):
        return None
    value = first_truthy(attrs, _MODEL_KEYS)
    if value is None and attrs.get(others.GENKIT_SUBTYPE) == "model":
        value = attrs.get(others.GENKIT_NAME) or None
    return None if value is None else to_text(value)


def _parameter(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    return to_text(value)


def model_parameters(span: SpanView, names: AttributeNames | None = None) -> dict[str, Any] | None:
    attrs = span.attributes
    own = (
        json_object(attrs.get(langfuse.MODEL_PARAMETERS))
        if langfuse.MODEL_PARAMETERS in attrs
        else None
    )
    own_params = {k: _parameter(v) for k, v in own.items()} if own is not None else None
    if span.scope_name == vercel_ai.SCOPE:
        params: dict[str, Any] = {}
        for name, keys in vercel_ai.MODEL_PARAMETERS:
            value = first_present(attrs, keys)
            params[name] = None if value is None else to_text(value)
        return {**params, **(own_params or {})}
    if own_params is not None:
        return own_params
    if span.scope_name == others.GENKIT_SCOPE:
        config = _dig(json_object(attrs.get(others.GENKIT_INPUT)), ("config",))
        if not isinstance(config, dict):
            config = _dig(json_object(attrs.get(others.GENKIT_OUTPUT)), ("request", "config"))
        if isinstance(config, dict):
            return {k: _parameter(v) for k, v in config.items()}
    for key in (openinference.INVOCATION_PARAMETERS, others.MODEL_CONFIG):
        obj = json_object(attrs.get(key))
        if obj is not None:
            return {k: _parameter(v) for k, v in obj.items()}
    params = {}
    for key, name in _stripped(attrs, names, _PARAMETER_PREFIXES):
        if key != genai.REQUEST_MODEL:
            params[name] = _parameter(attrs[key])
    return params or None


def _stripped(
    attrs: dict[str, Any], names: AttributeNames | None, prefixes: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """The attributes named with one of ``prefixes``, as (name, rest of the name); from the
    span's remembered attribute names when given."""
    return names.stripped(prefixes) if names is not None else stripped_names(attrs, prefixes)


_PARAMETER_PREFIXES = (genai.REQUEST_PREFIX, openinference.INVOCATION_PARAMETERS_PREFIX)


# The canonical counts of the generic usage rule (in the order _generic_usage unpacks them),
# and each alias: (its count's slot, its rank among that count's aliases).
_USAGE_SLOTS = (
    genai.USAGE_INPUT,
    genai.USAGE_OUTPUT,
    genai.USAGE_TOTAL,
    genai.USAGE_CACHE_READ,
    genai.USAGE_CACHE_WRITE,
    genai.USAGE_REASONING,
    genai.USAGE_AUDIO,
)
_USAGE_ALIASES = {
    alias: (slot, rank)
    for slot, aliases in enumerate(_USAGE_SLOTS)
    for rank, alias in enumerate(aliases)
}


def _generic_usage(attrs: dict[str, Any], names: AttributeNames | None) -> dict[str, Any]:
    collected: dict[str, Any] = {}
    for key, name in _stripped(attrs, names, genai.USAGE_PREFIXES):
        value = attrs[key]
        if key != genai.COST and isinstance(value, (int, float)) and not isinstance(value, bool):
            collected[name] = value
    if not collected:
        return {}
    # Every alias leaves ``collected``; of a slot's aliases, the first in order wins. (Looked
    # up from the few collected names, not the other way round: this runs for every generation.)
    slots: list[Any] = [None] * len(_USAGE_SLOTS)
    ranks = [len(_USAGE_ALIASES)] * len(_USAGE_SLOTS)
    for name in [name for name in collected if name in _USAGE_ALIASES]:
        slot, rank = _USAGE_ALIASES[name]
        value = collected.pop(name)
        if rank < ranks[slot]:
            slots[slot], ranks[slot] = value, rank
    inp, out, total, cache_read, cache_write, reasoning, audio = slots
    result: dict[str, Any] = {}
    if inp is not None:
        result["input"] = max(0, inp - (cache_read or 0) - (cache_write or 0))
    if out is not None:
        result["output"] = max(0, out - (reasoning or 0) - (audio or 0))
    for key, value in (
        ("total", total),
        ("input_cached_tokens", cache_read),
        ("input_cache_creation", cache_write),
        ("output_reasoning_tokens", reasoning),
        ("output_audio_tokens", audio),
    ):
        if value is not None:
            result[key] = value
    for key, value in collected.items():
        result[key.removeprefix("details.")] = value
    return result


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _vercel_usage(attrs: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, keys in vercel_ai.USAGE:
        value = first_present(attrs, keys)
        if value is not None:
            result[name] = value
    provider = json_object(attrs.get(vercel_ai.PROVIDER_METADATA)) or {}
    for vendor, path, name in vercel_ai.PROVIDER_USAGE:
        value = _dig(provider.get(vendor), path)
        if value is not None and name not in result:
            result[name] = value
    for name in ("input_cache_creation_5m", "input_cache_creation_1h"):
        if isinstance(result.get(name), (int, float)) and isinstance(
            result.get("input_cache_creation"), (int, float)
        ):
            result["input_cache_creation"] = max(0, result["input_cache_creation"] - result[name])
    if isinstance(result.get("input"), (int, float)):
        deduct = sum(
            v for k in vercel_ai.INPUT_DEDUCTIONS if isinstance(v := result.get(k), (int, float))
        )
        result["input"] = max(0, result["input"] - deduct)
    reasoning = result.get("output_reasoning_tokens")
    if isinstance(result.get("output"), (int, float)) and isinstance(reasoning, (int, float)):
        result["output"] = max(0, result["output"] - reasoning)
    return result


def _genkit_usage(attrs: dict[str, Any]) -> dict[str, Any] | None:
    usage = _dig(json_object(attrs.get(others.GENKIT_OUTPUT)), ("usage",))
    if not isinstance(usage, dict):
        return None
    result: dict[str, Any] = {}
    thoughts = usage.get("thoughtsTokens")
    thoughts = thoughts if isinstance(thoughts, (int, float)) else None
    if isinstance(usage.get("inputTokens"), (int, float)):
        result["input"] = usage["inputTokens"]
    if isinstance(usage.get("outputTokens"), (int, float)):
        result["output"] = max(0, usage["outputTokens"] - (thoughts or 0))
    if isinstance(usage.get("totalTokens"), (int, float)):
        result["total"] = usage["totalTokens"]
    if thoughts is not None:
        result["output_reasoning"] = thoughts
    return result


def _adk_cached_tokens(response: Any, usage: dict[str, Any]) -> None:
    """Google ADK: the cached prompt tokens sit in the raw LLM response."""
    if any(k in usage for k in ("input_cached_tokens", "input_cache_read")):
        return
    cached = _dig(json_object(response), ("usage_metadata", "cached_content_token_count"))
    if isinstance(cached, (int, float)) and not isinstance(cached, bool) and cached > 0:
        usage["input_cached_tokens"] = cached
        if isinstance(usage.get("input"), (int, float)):
            usage["input"] = max(0, usage["input"] - cached)


def usage_details(span: SpanView, names: AttributeNames | None = None) -> dict[str, int] | None:
    attrs = span.attributes
    if _is_vercel_agent(attrs):
        return None
    raw: dict[str, Any] | None = None
    if langfuse.USAGE_DETAILS in attrs:
        value = attrs[langfuse.USAGE_DETAILS]
        if not isinstance(value, str):
            raw = {}
        else:
            try:
                parsed = json.loads(value)
                raw = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                raw = None
    if raw is None and span.scope_name == others.GENKIT_SCOPE:
        raw = _genkit_usage(attrs)
    if raw is None:
        if span.scope_name == vercel_ai.SCOPE:
            raw = _vercel_usage(attrs)
        else:
            raw = _generic_usage(attrs, names)
        if others.ADK_RESPONSE in attrs:
            _adk_cached_tokens(attrs[others.ADK_RESPONSE], raw)
    details = usage_details_from_object(raw)
    return details or None


def cost_details(span: SpanView) -> dict[str, float] | None:
    attrs = span.attributes
    if _is_vercel_agent(attrs):
        return None
    if langfuse.COST_DETAILS in attrs:
        obj = json_object(attrs[langfuse.COST_DETAILS])
        if obj is not None:
            return cost_details_from_object(obj) or None
    for key in (genai.COST, openinference.COST_TOTAL):
        if key in attrs:
            return cost_details_from_object({"total": attrs[key]}) or None
    return None


def prompt_link(attrs: dict[str, Any]) -> tuple[str, int] | None:
    """Prompt name and integer version, or None (a name without a version is not linked)."""
    for name_key, version_key in langfuse.PROMPT_KEYS:
        if name_key in attrs or version_key in attrs:
            return _prompt(attrs.get(name_key), attrs.get(version_key))
    obj = json_object(attrs.get(vercel_ai.PROMPT))
    if obj is not None:
        return _prompt(obj.get("name"), obj.get("version"))
    return None


def _prompt(name: Any, version: Any) -> tuple[str, int] | None:
    count = as_count(version)
    if isinstance(name, str) and name and count is not None:
        return name, count
    return None


def experiment_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    """Observation fields of the ``langfuse.experiment.*`` attributes (empty without an id).

    Ids stay text; the name, description and dataset id are text; metadata, item metadata and
    the expected output are JSON (sent as JSON text, or metadata as per-key attributes); the
    item version is kept only when it is a date, as Langfuse does.
    """
    experiment_id = attrs.get(langfuse.EXPERIMENT_ID)
    if not truthy(experiment_id):
        return {}
    details: dict[str, Any] = {}
    for field, key in langfuse.EXPERIMENT_TEXT:
        if truthy(attrs.get(key)):
            details[field] = to_text(attrs[key])
    for field, key in langfuse.EXPERIMENT_JSON:
        value = json_object(attrs.get(key)) if truthy(attrs.get(key)) else None
        prefix = key + "."
        flat = {k[len(prefix) :]: v for k, v in attrs.items() if k.startswith(prefix)}
        if value is not None or flat:
            details[field] = {**(value or {}), **flat}
    if langfuse.EXPERIMENT_EXPECTED_OUTPUT in attrs:
        details["expectedOutput"] = json_value(attrs[langfuse.EXPERIMENT_EXPECTED_OUTPUT])
    version = attrs.get(langfuse.EXPERIMENT_ITEM_VERSION)
    if truthy(version) and parse_time(to_text(version)) is not None:
        details["itemVersion"] = to_text(version)
    fields: dict[str, Any] = {"experiment_id": to_text(experiment_id), "experiment": details}
    for field, key in (
        ("experiment_item_id", langfuse.EXPERIMENT_ITEM_ID),
        ("experiment_root_observation_id", langfuse.EXPERIMENT_ROOT),
    ):
        if truthy(attrs.get(key)):
            fields[field] = to_text(attrs[key])
    return fields
