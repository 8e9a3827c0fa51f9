"""The built-in model table (``builtin_models.json``), shared by every project."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from .definitions import ModelDefinition, parse_datetime, parse_model

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _condition(raw: dict[str, Any]) -> dict[str, Any]:
    if "usage_pattern" in raw:
        return {
            "usageDetailPattern": raw["usage_pattern"],
            "operator": raw["operator"],
            "value": raw["value"],
            "caseSensitive": raw["case_sensitive"],
        }
    return {"source": raw["source"], "key": raw["key"], "operator": "in", "values": raw["values"]}


def _stamp(value: str | None) -> datetime:
    return parse_datetime(value, "created_at/updated_at") if value else _EPOCH


def parse_builtin_table(table: dict[str, Any]) -> tuple[ModelDefinition, ...]:
    """Every entry of the table, validated like a ``POST /api/public/models`` body."""
    models = []
    for raw in table["models"]:
        body = {
            "modelName": raw["model_name"],
            "matchPattern": raw["match_pattern"],
            "startDate": raw.get("start_date"),
            "unit": raw.get("unit"),
            "tokenizerId": raw.get("tokenizer_id"),
            "tokenizerConfig": raw.get("tokenizer_config"),
            "pricingTiers": [
                {
                    "id": tier["id"],
                    "name": tier["name"],
                    "isDefault": tier["is_default"],
                    "priority": tier["priority"],
                    "conditions": [_condition(c) for c in tier["conditions"]],
                    "prices": tier["prices"],
                }
                for tier in raw["pricing_tiers"]
            ],
        }
        models.append(
            parse_model(
                body,
                project_id=None,
                model_id=raw["id"],
                now=_EPOCH,
                make_id=lambda: None,
                created_at=_stamp(raw.get("created_at")),
                updated_at=_stamp(raw.get("updated_at")),
            )
        )
    return tuple(models)


@cache
def builtin_models() -> tuple[ModelDefinition, ...]:
    """The packaged table, parsed once per process."""
    text = resources.files("tracehouse.pricing").joinpath("builtin_models.json").read_text()
    return parse_builtin_table(json.loads(text))
