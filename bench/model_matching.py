"""Cost of pricing at ingestion: model matching and tiered cost for 10,000 observations.

Runs in-process (no server) over the shipped built-in table plus a few project definitions,
and prints, per observation: the first match of a model name in a project (every pattern
tried), a repeated match (the per-project name cache), and the whole pricing step (match, tier
choice, cost of every usage key). Also the one-off cost of loading the built-in table.

    .venv/bin/python bench/model_matching.py
    .venv/bin/python bench/model_matching.py --observations 100000 --json

It never asserts anything.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracehouse.pricing import builtin  # noqa: E402
from tracehouse.pricing.cost import price_observation  # noqa: E402
from tracehouse.pricing.definitions import parse_model  # noqa: E402
from tracehouse.pricing.registry import ModelRegistry  # noqa: E402

NAMES = [
    "gpt-4o", "openai/gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4.1", "gpt-5", "o3-mini",
    "claude-sonnet-4-5-20250929", "anthropic.claude-3-haiku-20240307-v1:0",
    "gemini-2.5-pro", "google/gemini-2.5-flash", "text-embedding-3-small",
    "llama-3-70b", "house-llm-v2", "mistral-large",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    builtin.builtin_models.cache_clear()
    models = builtin.builtin_models()
    load_ms = (time.perf_counter() - t0) * 1000

    house = parse_model(
        {"modelName": "house-llm", "matchPattern": "(?i)^house-llm(-v\\d+)?$", "inputPrice": 1e-6},
        project_id="p",
        model_id="house",
        now=datetime.now(UTC),
        make_id=lambda: "t",
    )
    registry = ModelRegistry(models, lambda _project: [house], refresh_seconds=3600)
    rng = random.Random(7)
    projects = [f"project-{i}" for i in range(args.projects)]
    work = [(rng.choice(projects), rng.choice(NAMES)) for _ in range(args.observations)]

    # First sight of every (project, name): every pattern is tried until one matches.
    pairs = sorted({(p, n) for p in projects for n in NAMES})
    t0 = time.perf_counter()
    for project, name in pairs:
        registry.match(project, name)
    cold_us = (time.perf_counter() - t0) / len(pairs) * 1e6

    t0 = time.perf_counter()
    for project, name in work:
        registry.match(project, name)
    warm_us = (time.perf_counter() - t0) / len(work) * 1e6

    observations = [
        {
            "model": name,
            "usage_details": {"input": rng.randint(10, 300_000), "output": rng.randint(1, 4000)},
            "model_parameters": {"temperature": 0.2},
        }
        for _, name in work
    ]
    t0 = time.perf_counter()
    for (project, name), values in zip(work, observations, strict=True):
        price_observation(values, registry.match(project, name))
    priced_s = time.perf_counter() - t0

    figures = {
        "observations": args.observations,
        "builtin_models": len(models),
        "table_load_ms": round(load_ms, 1),
        "first_match_us": round(cold_us, 1),
        "cached_match_us": round(warm_us, 2),
        "match_and_price_us": round(priced_s / len(work) * 1e6, 2),
        "match_and_price_total_ms": round(priced_s * 1000, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"built-in table: {len(models)} models, loaded and compiled in {load_ms:.1f} ms")
    print(f"first match of a name in a project (all patterns tried): {cold_us:.1f} µs")
    print(f"cached match: {warm_us:.2f} µs per observation")
    print(
        f"match + tier + cost: {figures['match_and_price_us']} µs per observation, "
        f"{figures['match_and_price_total_ms']} ms for {args.observations:,} observations"
    )


if __name__ == "__main__":
    main()
