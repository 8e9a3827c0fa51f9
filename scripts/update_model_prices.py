"""Regenerate tracehouse's built-in model table from Langfuse's default model prices.

Usage (from the repository root)::

    python scripts/update_model_prices.py                         # the reference snapshot
    python scripts/update_model_prices.py path/to/default-model-prices.json
    python scripts/update_model_prices.py --check                 # exit 1 if the table is stale

Langfuse publishes its price table as JSON (``worker/src/constants/default-model-prices.json``
in the langfuse/langfuse repository, MIT). This script converts it to tracehouse's own format
(``tracehouse/pricing/builtin_models.json``: snake_case, usage and attribute conditions spelled
out, sorted by model name, attribution kept in the file) and validates every entry with the same
parser the models API uses, so a bad upstream pattern or price fails here, not at server start.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "reference" / "langfuse-default-model-prices.json"
TARGET = REPO / "tracehouse" / "pricing" / "builtin_models.json"

ATTRIBUTION = (
    "Model names, match patterns, tokenizer settings and prices from Langfuse's default model "
    "price table (github.com/langfuse/langfuse, worker/src/constants/default-model-prices.json), "
    "MIT License, Copyright (c) 2022-2026 Langfuse GmbH and contributors. Converted to this "
    "format by scripts/update_model_prices.py; do not edit by hand."
)


def _condition(raw: dict[str, Any]) -> dict[str, Any]:
    if "usageDetailPattern" in raw:
        return {
            "usage_pattern": raw["usageDetailPattern"],
            "operator": raw["operator"],
            "value": raw["value"],
            "case_sensitive": bool(raw.get("caseSensitive", False)),
        }
    return {"source": raw["source"], "key": raw["key"], "values": list(raw["values"])}


def convert_model(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": raw["id"],
        "model_name": raw["modelName"],
        "match_pattern": raw["matchPattern"],
        "start_date": raw.get("startDate"),
        "unit": raw.get("unit"),
        "tokenizer_id": raw.get("tokenizerId"),
        "tokenizer_config": raw.get("tokenizerConfig"),
        "pricing_tiers": [
            {
                "id": tier["id"],
                "name": tier["name"],
                "is_default": tier["isDefault"],
                "priority": tier["priority"],
                "conditions": [_condition(c) for c in tier.get("conditions", [])],
                "prices": dict(sorted(tier["prices"].items())),
            }
            for tier in sorted(
                raw["pricingTiers"], key=lambda t: (not t["isDefault"], t["priority"])
            )
        ],
        "created_at": raw.get("createdAt"),
        "updated_at": raw.get("updatedAt"),
    }


def convert(source: list[dict[str, Any]]) -> dict[str, Any]:
    models = sorted((convert_model(m) for m in source), key=lambda m: (m["model_name"], m["id"]))
    return {"attribution": ATTRIBUTION, "models": models}


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    args = parser.parse_args(argv)

    table = convert(json.loads(args.source.read_text()))
    text = render(table)
    sys.path.insert(0, str(REPO))
    from tracehouse.pricing.builtin import parse_builtin_table

    models = parse_builtin_table(table)  # raises on any invalid entry
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(REPO)} is stale; run scripts/update_model_prices.py")
            return 1
        print(f"{len(models)} built-in models, up to date")
        return 0
    TARGET.write_text(text)
    print(f"wrote {len(models)} models to {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
