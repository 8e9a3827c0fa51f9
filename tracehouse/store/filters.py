"""One compiler for Langfuse's JSON ``filter`` conditions, shared by every list route.

A route describes its filterable columns as ``FilterColumn``s; ``compile_conditions`` turns a
parsed condition list into SQL boolean expressions (bound parameters only) for SQLite and
PostgreSQL. JSON values live in ``Text`` columns on both dialects.

NULL rule: positive operators never match NULL; the negative ones (``does not contain``,
``none of``, ``<>``) do, since a missing value is not equal to / does not contain anything.
"""

from __future__ import annotations

import json
import math
import operator as op
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Numeric,
    Text,
    bindparam,
    case,
    cast,
    distinct,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql import literal_column
from sqlalchemy.types import NullType

from tracehouse.errors import InvalidInput
from tracehouse.store.types import unpacked

__all__ = [
    "KIND_TYPES",
    "OPERATORS",
    "FilterColumn",
    "compile_conditions",
    "json_text_path",
    "parse_filter_param",
]

_STRING_OPS = ("=", "contains", "does not contain", "starts with", "ends with", "matches")
_NUMBER_OPS = ("=", ">", "<", ">=", "<=")
OPERATORS: dict[str, tuple[str, ...]] = {
    "datetime": (">", "<", ">=", "<="),
    "string": _STRING_OPS,
    "stringOptions": ("any of", "none of"),
    "categoryOptions": ("any of", "none of"),
    "arrayOptions": ("any of", "none of", "all of"),
    "number": _NUMBER_OPS,
    "stringObject": _STRING_OPS,
    "numberObject": _NUMBER_OPS,
    "booleanObject": ("=", "<>"),
    "boolean": ("=", "<>"),
    "null": ("is null", "is not null"),
}
KIND_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"string", "stringOptions", "null"}),
    "datetime": frozenset({"datetime", "null"}),
    "number": frozenset({"number", "null"}),
    "boolean": frozenset({"boolean", "null"}),
    "string_array": frozenset({"arrayOptions", "null"}),
    "json_object": frozenset(
        {"stringObject", "numberObject", "booleanObject", "categoryOptions", "null"}
    ),
    "custom": frozenset(),
}
_OBJECT_TYPES = frozenset({"stringObject", "numberObject", "booleanObject"})
_CMP = {"=": op.eq, ">": op.gt, "<": op.lt, ">=": op.ge, "<=": op.le}
_PG_NUMBER_RE = r"^\s*-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"
_DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class FilterColumn:
    """How one filterable column compiles: an expression plus its kind (or a custom builder)."""

    expr: Any
    kind: str
    build: Callable[[str, Any, str | None], Any] | None = None
    types: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", frozenset(self.types))
        if self.kind not in KIND_TYPES:
            raise ValueError(f"unknown filter column kind {self.kind!r}")
        if unknown := self.types - OPERATORS.keys():
            raise ValueError(f"unknown filter types {sorted(unknown)}")
        if self.kind == "custom" and (self.build is None or not self.types):
            raise ValueError("a custom filter column needs both build and types")

    @property
    def accepted_types(self) -> frozenset[str]:
        """Condition types this column accepts."""
        return self.types or KIND_TYPES[self.kind]


def parse_filter_param(raw: str | None) -> list[dict]:
    """Decode the ``filter`` query parameter into a shape-checked list of conditions."""
    if raw is None or not raw.strip():
        return []
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("filter", f"is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise InvalidInput("filter", "must be a JSON array of filter conditions")
    for i, cond in enumerate(data):
        _check_shape(i, cond)
    return data


def compile_conditions(
    conditions: list[dict], columns: Mapping[str, FilterColumn], *, dialect: str
) -> list[Any]:
    """Compile conditions into SQL boolean expressions, to be AND-ed together."""
    if dialect not in _DIALECTS:
        raise ValueError(f"unsupported dialect {dialect!r}")
    if not isinstance(conditions, list):
        raise InvalidInput("filter", "must be a JSON array of filter conditions")
    return [_compile_one(i, cond, columns, dialect) for i, cond in enumerate(conditions)]


def json_text_path(col: Any, key: str, *, dialect: str) -> Any:
    """The value at top-level ``key`` of a JSON-text column as text (NULL when absent/null)."""
    if dialect == "postgresql":
        return cast(col, JSONB)[key].astext
    each = func.json_each(unpacked(col, dialect)).table_valued("key", "value", "type")
    text = case(
        (each.c.type == "true", "true"),
        (each.c.type == "false", "false"),
        else_=cast(each.c.value, Text),
    )
    return select(text).where(each.c.key == key).limit(1).scalar_subquery()


def raw_json_text(col: Any, dialect: str) -> Any:
    """A JSON-text column as Langfuse keeps it: a JSON string unquoted, any other value as JSON."""
    if dialect == "postgresql":
        doc = cast(col, JSONB)
        unquoted = doc.op("#>>", return_type=Text)(literal_column("'{}'"))
        expr = case((func.jsonb_typeof(doc) == "string", unquoted), else_=cast(col, Text))
    else:
        col = unpacked(col, dialect)
        expr = case((func.json_type(col) == "text", func.json_extract(col, "$")), else_=col)
    # Compare as plain text: the column's own type would JSON-encode the bound value.
    return type_coerce(expr, Text())


def _check_shape(i: int, cond: Any) -> None:
    """Reject a condition that is not an object with string type/column/operator (and key)."""
    if not isinstance(cond, dict):
        raise InvalidInput("filter", f"condition {i} must be a JSON object")
    for name in ("type", "column", "operator"):
        if cond.get(name) is None:
            raise InvalidInput(f"filter[{i}].{name}", "is required")
        if not isinstance(cond[name], str):
            raise InvalidInput(f"filter[{i}].{name}", "must be a string")
    if cond.get("key") is not None and not isinstance(cond["key"], str):
        raise InvalidInput(f"filter[{i}].key", "must be a string")


def _lookup(columns: Mapping[str, FilterColumn], name: str, field: str) -> FilterColumn:
    """Find a column by exact name, else by a unique case-insensitive match."""
    if name in columns:
        return columns[name]
    folded = [c for c in columns if c.lower() == name.lower()]
    if len(folded) == 1:
        return columns[folded[0]]
    valid = ", ".join(sorted(columns))
    raise InvalidInput(field, f"unknown column {name!r}; valid columns: {valid}")


def _compile_one(i: int, cond: Any, columns: Mapping[str, FilterColumn], dialect: str) -> Any:
    """Validate and compile condition number ``i``."""
    _check_shape(i, cond)
    at = f"filter[{i}]"
    ctype, name, oper, key = cond["type"], cond["column"], cond["operator"], cond.get("key")
    col = _lookup(columns, name, f"{at}.column")
    if ctype not in OPERATORS:
        raise InvalidInput(
            f"{at}.type", f"unknown type {ctype!r}; use one of: {', '.join(OPERATORS)}"
        )
    if ctype not in col.accepted_types:
        allowed = ", ".join(sorted(col.accepted_types))
        raise InvalidInput(
            f"{at}.type",
            f"type {ctype!r} is not supported for column {name!r}; use one of: {allowed}",
        )
    if oper not in OPERATORS[ctype]:
        allowed = ", ".join(repr(o) for o in OPERATORS[ctype])
        raise InvalidInput(
            f"{at}.operator",
            f"operator {oper!r} is not valid for type {ctype!r}; use one of: {allowed}",
        )
    value = _check_value(ctype, cond.get("value"), f"{at}.value")
    keyed = ctype in _OBJECT_TYPES or (
        ctype == "categoryOptions" and col.kind in ("json_object", "custom")
    )
    if keyed and key is None:
        raise InvalidInput(f"{at}.key", f"is required for type {ctype!r}")
    if col.kind == "custom":
        try:
            return col.build(oper, value, key)  # type: ignore[misc]
        except ValueError as exc:
            raise InvalidInput(f"{at}.value", str(exc)) from None
    target = col.expr
    if keyed or (key is not None and ctype == "null" and col.kind == "json_object"):
        target = json_text_path(col.expr, key, dialect=dialect)  # type: ignore[arg-type]
    return _build(ctype, oper, target, value, dialect)


def _check_value(ctype: str, value: Any, field: str) -> Any:
    """Check (and normalise) the condition value for its type."""
    if ctype == "null":
        return None
    if value is None:
        raise InvalidInput(field, f"is required for type {ctype!r}")
    if ctype == "datetime":
        if not isinstance(value, str):
            raise InvalidInput(field, "must be an ISO-8601 datetime string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(field, f"is not an ISO-8601 datetime: {value[:64]!r}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if ctype in ("string", "stringObject") and not isinstance(value, str):
        raise InvalidInput(field, f"must be a string for type {ctype!r}")
    if ctype in ("number", "numberObject") and not _is_finite_number(value):
        raise InvalidInput(field, f"must be a finite number for type {ctype!r}")
    if ctype in ("boolean", "booleanObject") and not isinstance(value, bool):
        raise InvalidInput(field, f"must be true or false for type {ctype!r}")
    if ctype in ("stringOptions", "categoryOptions", "arrayOptions") and (
        not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    ):
        raise InvalidInput(field, f"must be an array of strings for type {ctype!r}")
    return value


def _is_finite_number(value: Any) -> bool:
    """True for a JSON number (not a boolean) that fits a double."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _build(ctype: str, oper: str, expr: Any, value: Any, dialect: str) -> Any:
    """SQL for one validated condition on ``expr``."""
    if ctype == "null":
        return expr.is_(None) if oper == "is null" else expr.is_not(None)
    if ctype in ("string", "stringObject"):
        return _string(expr, oper, value, dialect, case_sensitive_matches=ctype == "stringObject")
    if ctype in ("stringOptions", "categoryOptions"):
        return expr.in_(value) if oper == "any of" else or_(expr.is_(None), expr.not_in(value))
    if ctype == "arrayOptions":
        return _array(expr, oper, value, dialect)
    if ctype == "datetime":
        typ = getattr(expr, "type", NullType())
        typ = DateTime(timezone=True) if isinstance(typ, NullType) else typ
        return _CMP[oper](expr, literal(value, typ))
    if ctype == "number":
        return _CMP[oper](expr, literal(float(value), Float()))
    if ctype == "numberObject":
        return _json_number(expr, oper, value, dialect)
    if ctype == "boolean":
        hit = expr == value
        return hit if oper == "=" else or_(expr.is_(None), expr != value)
    hit = func.lower(expr) == ("true" if value else "false")
    return hit if oper == "=" else or_(expr.is_(None), not_(hit))


def _string(expr: Any, oper: str, value: str, dialect: str, *, case_sensitive_matches: bool) -> Any:
    """String comparison: ``=`` exact, the rest case-insensitive literal substring matches."""
    if oper == "=":
        return expr == value
    if oper == "starts with":
        return expr.istartswith(value, autoescape=True)
    if oper == "ends with":
        return expr.iendswith(value, autoescape=True)
    if oper == "matches" and case_sensitive_matches:
        position = func.strpos if dialect == "postgresql" else func.instr
        return position(expr, literal(value, Text())) > 0
    hit = expr.icontains(value, autoescape=True)
    return or_(expr.is_(None), not_(hit)) if oper == "does not contain" else hit


def _array(expr: Any, oper: str, value: list[str], dialect: str) -> Any:
    """``any of`` / ``all of`` / ``none of`` over a JSON-text array of strings."""
    if not value:
        return false() if oper == "any of" else true()
    if dialect == "postgresql":
        doc, arr = cast(expr, JSONB), bindparam(None, value, type_=ARRAY(Text()))
        if oper == "all of":
            return doc.has_all(arr)
        return doc.has_any(arr) if oper == "any of" else or_(expr.is_(None), not_(doc.has_any(arr)))
    each = func.json_each(expr).table_valued("value")
    if oper == "all of":
        found = select(func.count(distinct(each.c.value))).where(each.c.value.in_(value))
        return found.scalar_subquery() == len(set(value))
    hit = exists(select(each.c.value).where(each.c.value.in_(value)))
    return hit if oper == "any of" else not_(hit)


def json_array_contains(dialect: str, expr: Any, value: str) -> Any:
    """A JSON-text array of strings (e.g. tags) holds ``value``."""
    return _array(expr, "any of", [value], dialect)


def _json_number(text: Any, oper: str, value: float, dialect: str) -> Any:
    """Numeric comparison of a JSON value (number or numeric string); anything else never matches."""
    if dialect == "postgresql":
        number = case((text.regexp_match(_PG_NUMBER_RE), cast(text, Numeric())))
        return _CMP[oper](number, literal(Decimal(repr(value)), Numeric()))
    kind = case((func.json_valid(text) == 1, func.json_type(text)))
    number = case((kind.in_(("integer", "real")), cast(text, Float())))
    return _CMP[oper](number, literal(float(value), Float()))
