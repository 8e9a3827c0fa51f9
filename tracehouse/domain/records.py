"""Derived values of merged records: defaults, usage totals and cost totals.

Applied after every merge, so stored rows are always complete and consistent.
"""

from __future__ import annotations

from typing import Any


def finalize_trace(values: dict[str, Any]) -> None:
    values.setdefault("environment", "default")
    values["tags"] = values.get("tags") or []
    if values.get("public") is None:
        values["public"] = False
    if values.get("bookmarked") is None:
        values["bookmarked"] = False


def finalize_score(values: dict[str, Any]) -> None:
    values.setdefault("environment", "default")
    values.setdefault("source", "API")
    if values.get("data_type") is None:
        values["data_type"] = "CATEGORICAL" if values.get("string_value") is not None else "NUMERIC"


def usage_totals(provided: dict[str, Any] | None) -> dict[str, float]:
    """Final usage from what the client sent: numeric, non-negative; total = sum when not given."""
    usage: dict[str, float] = {}
    for key, value in (provided or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            continue
        usage[key] = value
    if usage and "total" not in usage:
        usage["total"] = sum(usage.values())
    return usage


def cost_totals(provided: dict[str, Any] | None) -> dict[str, float]:
    """Final cost from what the client sent; total = input + output when only those were given."""
    cost = {
        k: float(v)
        for k, v in (provided or {}).items()
        if not isinstance(v, bool) and isinstance(v, int | float) and v >= 0
    }
    if cost and "total" not in cost and set(cost) <= {"input", "output"}:
        cost["total"] = sum(cost.values())
    return cost


def _side_sum(details: dict[str, float], side: str) -> float:
    return sum(v for k, v in details.items() if k == side or k.startswith(side + "_"))


def finalize_observation(values: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults in place and return the derived usage/cost columns.

    ``values["usage_details"]`` / ``values["cost_details"]`` hold what clients *provided*; the
    returned dict holds the final figures stored beside them.
    """
    values.setdefault("environment", "default")
    if values.get("level") is None:
        values["level"] = "DEFAULT"
    start, end = values.get("start_time"), values.get("end_time")
    if start is not None and end is not None and end < start:
        values["end_time"] = start
    usage = usage_totals(values.get("usage_details"))
    cost = cost_totals(values.get("cost_details"))
    return {
        "usage_details": usage,
        "cost_details": cost,
        "input_usage": _side_sum(usage, "input"),
        "output_usage": _side_sum(usage, "output"),
        "total_usage": usage.get("total", 0),
        "input_cost": _side_sum(cost, "input") if cost else None,
        "output_cost": _side_sum(cost, "output") if cost else None,
        "total_cost": cost.get("total") if cost else None,
    }
