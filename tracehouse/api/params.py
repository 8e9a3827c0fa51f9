"""Query-parameter helpers shared by list routes: pagination, timestamps, `fields` groups."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import InvalidInput
from ..store.filters import parse_filter_param

MAX_LIMIT = 1000


def page_and_limit(page: int | None, limit: int | None, default_limit: int = 50) -> tuple[int, int]:
    page = 1 if page is None else page
    limit = default_limit if limit is None else limit
    if page < 1:
        raise InvalidInput("page", "must be 1 or greater")
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidInput("limit", f"must be between 1 and {MAX_LIMIT}")
    return page, limit


def parse_timestamp(name: str, value: str | None) -> datetime | None:
    """An ISO-8601 query value as UTC (a value without a zone is taken as UTC)."""
    if value is None or value == "":
        return None
    try:
        ts = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise InvalidInput(name, f"is not an ISO-8601 date-time: {value!r}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_field_groups(raw: str | None, allowed: set[str], always: str = "core") -> set[str]:
    """`fields=core,io,...` → the set of groups to include (all when absent)."""
    if raw is None or not raw.strip():
        return set(allowed)
    groups = {g.strip() for g in raw.split(",") if g.strip()}
    unknown = groups - allowed
    if unknown:
        raise InvalidInput(
            "fields", f"unknown field group(s) {sorted(unknown)}; use {sorted(allowed)}"
        )
    return groups | {always}


def time_window(
    column: str, *, start: tuple[str, str | None], end: tuple[str, str | None]
) -> list[dict[str, Any]]:
    """Conditions for a (parameter name, value) start (inclusive) and end (exclusive) on a column."""
    conds = []
    lower = parse_timestamp(*start)
    if lower is not None:
        conds.append(simple_condition(column, "datetime", ">=", lower.isoformat()))
    upper = parse_timestamp(*end)
    if upper is not None:
        conds.append(simple_condition(column, "datetime", "<", upper.isoformat()))
    return conds


def simple_condition(column: str, type_: str, operator: str, value: Any) -> dict[str, Any]:
    return {"column": column, "type": type_, "operator": operator, "value": value}


def combine_conditions(
    raw_filter: str | None, simple: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`filter` conditions, plus the simple parameters on columns the filter does not name.

    The filter takes precedence column by column, so e.g. a filter on the session still
    combines with a fromTimestamp/toTimestamp window.
    """
    advanced = parse_filter_param(raw_filter)
    named = {c["column"].lower() for c in advanced}
    return [c for c in simple if c["column"].lower() not in named] + advanced


def encode_cursor(sort_time: datetime, last_id: str) -> str:
    """An opaque keyset cursor: the (time, id) sort key of the last row of a page."""
    payload = {"v": 1, "t": sort_time.isoformat(), "id": last_id}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[datetime, str] | None:
    """The (time, id) key of a cursor made by `encode_cursor`; 400 naming `cursor` otherwise."""
    if not raw:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        sort_time = parse_timestamp("cursor", payload["t"])
        last_id = payload["id"]
        if payload.get("v") != 1 or sort_time is None or not isinstance(last_id, str):
            raise ValueError("unknown cursor")
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, InvalidInput):
        raise InvalidInput("cursor", "is not a cursor returned by this endpoint") from None
    return sort_time, last_id
