"""Strict JSON text decoding with the standard library, for what orjson does not take.

orjson is the fast path everywhere; this decoder serves where it falls short: integers beyond
64 bits (JSON allows them) and documents of megabytes (orjson's working memory is many times
their size). Like orjson it refuses NaN and Infinity, which are not JSON.
"""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder: json.loads(..., parse_constant=...) would build a new one on every call.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def loads_strict(text: str) -> Any:
    """The value of JSON ``text``; ValueError when it is not (strict) JSON."""
    return _STRICT.decode(text)
