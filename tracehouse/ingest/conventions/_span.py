"""The span as the convention mappers see it, and the small value helpers they share."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from ...jsontext import loads_strict


@dataclass(slots=True)
class SpanView:
    """One span with its attributes already converted to Python values."""

    name: str
    start_time: datetime
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    scope_attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    has_parent: bool = False
    # The exporter said it is the Langfuse Python SDK >= 5, which JSON-encodes every
    # ``langfuse.{observation,trace}.metadata.<key>`` value (strings included).
    json_metadata: bool = False


@dataclass(slots=True)
class MappedSpan:
    observation: dict[str, Any]  # observation fields (ids and times are set by the decoder)
    trace: dict[str, Any] | None  # trace fields, or None when the span does not touch its trace


def truthy(value: Any) -> bool:
    """JavaScript truthiness, which Langfuse's precedence rules are written in."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    return True


def has_value(value: Any) -> bool:
    """Not null, empty string, empty list or empty object."""
    return value is not None and value != "" and value != [] and value != {}


def to_text(value: Any) -> str:
    """Strings as they are, anything else as the JSON text JavaScript's ``JSON.stringify`` gives.

    Langfuse stringifies attribute values in JavaScript: compact, non-ASCII characters kept, and
    integral doubles without a fraction (``1.0`` -> ``1``).
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _js_number(value)
    return _COMPACT_JSON.encode(_js_numbers(value))


# json.dumps with any option builds an encoder on every call; this one is built once.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _js_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if math.isfinite(value):
        return repr(value)  # what json.dumps writes for a finite float
    return json.dumps(value)


def _js_numbers(value: Any) -> Any:
    """Integral floats as ints (as JavaScript prints them), through lists and objects."""
    if type(value) is float:
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    return value


def stripped_names(names: Iterable[str], prefixes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, the rest after the prefix) for every name and every one of ``prefixes`` it starts
    with, in order."""
    return tuple(
        (name, name[len(prefix) :])
        for name in names
        if name.startswith(prefixes)
        for prefix in prefixes
        if name.startswith(prefix)
    )


class AttributeNames(Protocol):
    """The names of a span's attributes, with what is worked out from them remembered."""

    def stripped(self, prefixes: tuple[str, ...]) -> tuple[tuple[str, str], ...]: ...

    def remembered(self, what: str, compute: Callable[[tuple[str, ...]], Any]) -> Any:
        """``compute(names)``, worked out once per span shape under the name ``what``."""
        ...


def first_truthy(attrs: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if truthy(value):
            return value
    return None


def json_object(value: Any) -> dict[str, Any] | None:
    """An object, or JSON text of one; anything else is None."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        parsed = json_value(value)
        return parsed if isinstance(parsed, dict) else None
    return None


def json_value(value: Any) -> Any:
    """The value JSON text stands for; text that is not JSON (or is NaN/Infinity) unchanged.

    The Langfuse SDKs send non-string values of their ``langfuse.*`` attributes as JSON text,
    and Langfuse's read API parses such text back; decoding on the way in gives the same reads.
    """
    if not isinstance(value, str) or value.lstrip(_JSON_SPACE)[:1] not in _JSON_STARTS:
        return value  # plain text (most values): no parser would take it
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses some JSON the standard library takes (numbers beyond a double, escaped
    # lone surrogates): the standard library decides. Not for text that starts like a literal
    # (orjson takes every literal it would) or like a number without being one (a version
    # such as "1.38.0": common, and the standard library's failure costs an exception).
    text = value.strip(_JSON_SPACE)
    if text[:1] in _LITERAL_STARTS or (
        text[:1] in _NUMBER_STARTS and _JSON_NUMBER.fullmatch(text) is None
    ):
        return value
    try:
        return loads_strict(value)
    except ValueError:
        return value


_JSON_SPACE = " \t\n\r"
# The first character of JSON text: an object, array, string, number, true, false or null.
_JSON_STARTS = frozenset('{["-0123456789tfn')
_LITERAL_STARTS = frozenset("tfn")
_NUMBER_STARTS = frozenset("-0123456789")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def first_present(attrs: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None
