"""Derived values of merged records: defaults, usage, cost and the model that priced it.

Applied after every merge, so stored rows are always complete and consistent.
"""

from __future__ import annotations

from typing import Any

from tracehouse.pricing.cost import price_observation
from tracehouse.pricing.definitions import ModelDefinition


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


def _sides(details: dict[str, float]) -> tuple[float, float]:
    """The sums of the input side (``input``, ``input_*``) and of the output side."""
    inp: float = 0
    out: float = 0
    for key, value in details.items():
        if key.startswith("input") and (len(key) == 5 or key[5] == "_"):
            inp += value
        elif key.startswith("output") and (len(key) == 6 or key[6] == "_"):
            out += value
    return inp, out


def finalize_observation(values: dict[str, Any], model: ModelDefinition | None) -> dict[str, Any]:
    """Fill defaults in place and return the derived usage/cost/model columns.

    ``values["usage_details"]`` / ``values["cost_details"]`` hold what clients *provided*;
    ``model`` is the definition matched to ``values["model"]`` (None: unpriced). The returned
    dict holds the final figures stored beside them.
    """
    values.setdefault("environment", "default")
    if values.get("level") is None:
        values["level"] = "DEFAULT"
    start, end = values.get("start_time"), values.get("end_time")
    if start is not None and end is not None and end < start:
        values["end_time"] = start
    priced = price_observation(values, model)
    usage, cost, tier = priced.usage, priced.cost, priced.tier
    prices = tier or (model.default_tier if model else None)
    unit_prices = prices.prices if prices is not None else {}
    input_usage, output_usage = _sides(usage)
    input_cost, output_cost = _sides(cost) if cost else (None, None)
    return {
        "usage_details": usage,
        "cost_details": cost,
        "input_usage": input_usage,
        "output_usage": output_usage,
        "total_usage": usage.get("total", 0),
        "input_cost": input_cost,
        "output_cost": output_cost,
        "total_cost": cost.get("total") if cost else None,
        "internal_model_id": priced.model_id,
        "pricing_tier_id": tier.id if tier else None,
        "pricing_tier_name": tier.name if tier else None,
        "input_price": unit_prices.get("input"),
        "output_price": unit_prices.get("output"),
        "total_price": unit_prices.get("total"),
    }
