"""Pure helpers that turn client-sent usage and cost objects into flat maps.

"Provided usage" is ``{usage key: unit count}`` (``input``, ``output``, ``total``,
``input_cached_tokens``, ...), "provided cost" is ``{usage key: USD}``. These helpers never raise:
they keep what they understand and drop the rest. Strict validation of the deprecated ``usage``
object (where Langfuse answers 400) lives in the wire-format parsers.
"""

from __future__ import annotations

import math
from typing import Any

# Counts are stored as signed 64-bit integers.
MAX_COUNT = 2**63 - 1

_CHAT_REQUIRED = ("prompt_tokens", "completion_tokens", "total_tokens")
_CHAT_KEYS = frozenset({*_CHAT_REQUIRED, "prompt_tokens_details", "completion_tokens_details"})
_RESPONSES_REQUIRED = ("input_tokens", "output_tokens", "total_tokens")
_RESPONSES_KEYS = frozenset({*_RESPONSES_REQUIRED, "input_tokens_details", "output_tokens_details"})


def as_count(value: Any) -> int | None:
    """A non-negative integer count, or None.

    Accepts ints, integral floats (``10.0``: JSON does not tell them apart) and strings of ASCII
    digits. Booleans are not counts.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not value.is_integer():  # also rejects inf and nan
            return None
        n = int(value)
    elif isinstance(value, str):
        if not value or len(value) > 19 or not value.isascii() or not value.isdigit():
            return None
        n = int(value)
    else:
        return None
    if n < 0 or n > MAX_COUNT:
        return None
    return n


def as_cost(value: Any) -> float | None:
    """A non-negative finite number as float, or None. Booleans and strings are not costs."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    if f < 0 or not math.isfinite(f):
        return None
    return f


def _is_openai_shape(
    obj: dict[str, Any], required: tuple[str, ...], allowed: frozenset[str]
) -> bool:
    if len(obj) < len(required) or len(obj) > len(allowed):
        return False
    for key in required:
        if as_count(obj.get(key)) is None or isinstance(obj.get(key), str):
            return False
    for key, value in obj.items():
        if key not in allowed:
            return False
        if key not in required and value is not None and not isinstance(value, dict):
            return False
    return True


def _split_openai(
    obj: dict[str, Any], in_key: str, out_key: str, in_details: str, out_details: str
) -> dict[str, int]:
    result: dict[str, int] = {}
    input_count = as_count(obj[in_key]) or 0
    output_count = as_count(obj[out_key]) or 0
    for key, value in (obj.get(in_details) or {}).items():
        n = as_count(value)
        if n is None or isinstance(value, str):
            continue
        result["input_" + key] = n
        input_count = max(input_count - n, 0)
    for key, value in (obj.get(out_details) or {}).items():
        n = as_count(value)
        if n is None or isinstance(value, str):
            continue
        result["output_" + key] = n
        output_count = max(output_count - n, 0)
    result["input"] = input_count
    result["output"] = output_count
    result["total"] = as_count(obj["total_tokens"]) or 0
    return result


def usage_details_from_object(obj: dict[str, Any]) -> dict[str, int]:
    """Normalise a ``usageDetails`` object.

    Three shapes: an OpenAI Chat Completions usage object, an OpenAI Responses usage object (each
    exactly its own keys; ``*_details`` entries are split out as ``input_<k>``/``output_<k>`` and
    subtracted from input/output, never below 0), or a free ``{key: count}`` map that keeps
    non-negative integer counts (also as digit strings) and drops everything else.
    """
    if _is_openai_shape(obj, _CHAT_REQUIRED, _CHAT_KEYS):
        return _split_openai(
            obj, "prompt_tokens", "completion_tokens", "prompt_tokens_details",
            "completion_tokens_details",
        )  # fmt: skip
    if _is_openai_shape(obj, _RESPONSES_REQUIRED, _RESPONSES_KEYS):
        return _split_openai(
            obj, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"
        )
    result: dict[str, int] = {}
    for key, value in obj.items():
        n = as_count(value)
        if n is not None:
            result[key] = n
    return result


def cost_details_from_object(obj: dict[str, Any]) -> dict[str, float]:
    """Normalise a ``costDetails`` object: keep non-negative numbers, drop the rest."""
    result: dict[str, float] = {}
    for key, value in obj.items():
        f = as_cost(value)
        if f is not None:
            result[key] = f
    return result


def build_provided_usage(
    input_count: int | None,
    output_count: int | None,
    total_count: int | None,
    details: dict[str, int],
) -> dict[str, int]:
    """Combine the deprecated ``usage`` counts with normalised ``usageDetails``.

    ``total`` is the sent total if non-zero; otherwise, only when ``details`` is empty, the sum of
    whichever of input/output were sent. ``details`` keys win over usage-derived ones.
    """
    result: dict[str, int] = {}
    if input_count is not None:
        result["input"] = input_count
    if output_count is not None:
        result["output"] = output_count
    if total_count:
        result["total"] = total_count
    elif not details and (input_count is not None or output_count is not None):
        result["total"] = (input_count or 0) + (output_count or 0)
    if details:
        result.update(details)
    return result
