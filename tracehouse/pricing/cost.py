"""Final usage and cost of one observation: provided figures, token counts, tiered prices.

The rules (Langfuse's, see ingestion-semantics §6-7): provided cost wins and disables pricing;
provided usage wins over token counting; a matched model without usage gets its input/output
counted with the model's tokenizer (never for ERROR observations); each usage key with a price
in the chosen tier is priced on its own; the first conditional tier (ascending priority) whose
conditions all hold is chosen, else the default tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .definitions import AttributeCondition, ModelDefinition, PricingTier
from .tokens import count_tokens


@dataclass(slots=True)
class Priced:
    usage: dict[str, float]
    cost: dict[str, float]
    model_id: str | None = None
    tier: PricingTier | None = None


def provided_usage(raw: dict[str, Any] | None) -> dict[str, float]:
    """Numeric, non-negative values; ``total`` = the sum of the others when not given."""
    usage: dict[str, float] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            continue
        usage[key] = value
    if usage and "total" not in usage:
        usage["total"] = sum(usage.values())
    return usage


def provided_cost(raw: dict[str, Any] | None) -> dict[str, float]:
    """Numeric, non-negative values; ``total`` = input + output when only those were given."""
    cost = {
        k: float(v)
        for k, v in (raw or {}).items()
        if not isinstance(v, bool) and isinstance(v, int | float) and v >= 0
    }
    if cost and "total" not in cost and set(cost) <= {"input", "output"}:
        cost["total"] = sum(cost.values())
    return cost


def choose_tier(
    model: ModelDefinition, usage: dict[str, float], model_parameters: Any, metadata: Any
) -> PricingTier:
    for tier in model.tiers[1:]:  # conditional tiers, ascending priority
        if all(
            c.holds(model_parameters, metadata)
            if isinstance(c, AttributeCondition)
            else c.holds(usage)
            for c in tier.conditions
        ):
            return tier
    return model.default_tier


def _tokenized_usage(model: ModelDefinition, values: dict[str, Any]) -> dict[str, float]:
    usage: dict[str, float] = {}
    for key, field, prompt in (("input", "input", True), ("output", "output", False)):
        count = count_tokens(
            model.tokenizer_id, model.tokenizer_config, values.get(field), prompt=prompt
        )
        if count is not None:
            usage[key] = count
    if usage:
        usage["total"] = sum(usage.values())
    return usage


def price_observation(values: dict[str, Any], model: ModelDefinition | None) -> Priced:
    """``values`` is the merged observation; its usage/cost details are what clients provided."""
    usage = provided_usage(values.get("usage_details"))
    cost = provided_cost(values.get("cost_details"))
    if model is None:
        return Priced(usage, cost)
    if not usage and not cost and values.get("level") != "ERROR":
        usage = _tokenized_usage(model, values)
    if cost or not usage:
        return Priced(usage, cost, model.id)
    tier = choose_tier(model, usage, values.get("model_parameters"), values.get("metadata"))
    computed: dict[str, Decimal] = {}
    prices = tier.decimal_prices
    for key, units in usage.items():
        price = prices.get(key)
        if price is not None:
            # An int's decimal is its text's; a float goes through its shortest text.
            computed[key] = (Decimal(units) if type(units) is int else Decimal(str(units))) * price
    if computed and "total" not in tier.prices:
        computed["total"] = sum(computed.values(), Decimal(0))
    return Priced(usage, {k: float(v) for k, v in computed.items()}, model.id, tier)
