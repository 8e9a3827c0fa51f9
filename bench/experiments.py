"""Experiment reads on one large experiment: items with their scores, the experiments list, the
run-level scores and the run's score aggregates.

Usage::

    .venv/bin/python bench/experiments.py                       # SQLite, 10,000 items
    .venv/bin/python bench/experiments.py --database-url postgresql://postgres@127.0.0.1/db
    .venv/bin/python bench/experiments.py --items 2000 --repeat 20

Starts ``tracehouse serve`` (or uses ``--url``), loads one experiment the way the SDKs'
experiment runners send it (per item an ``experiment-item-run`` span and its
``experiment-item-task`` child, the item's root observation, both with ``langfuse.experiment.*``
attributes, over OTLP/protobuf), ``--scores-per-item`` scores on each item's trace and
``--run-scores`` run-level scores (``datasetRunId`` = the experiment id), then times:

* ``GET /api/public/experiment-items?experimentId=…&fields=core,scores`` paging through every
  item (limit 100), and the per-page latency;
* ``GET /api/public/experiments?fields=scores``;
* ``GET /api/public/v3/scores?experimentId=…`` (the run-level scores);
* ``GET /api/public/experiments/{id}/score-aggregates`` (tracehouse extension: count, average,
  min, max per score name over the item traces' scores and the run-level scores);
* ``GET /api/public/experiments/{id}/scores?limit=10000`` (tracehouse extension: every item and
  run-level score of the experiment, newest first) paging through all of them, ``--repeat``
  times: the per-page latency and the total of one walk.

Prints the figures and the machine facts; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

import httpx
from _common import (
    Server,
    add_server_args,
    fmt,
    latency_figures,
    machine_facts,
    print_machine,
    run_against_server,
    store_label,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
FROM = "2025-12-31T00:00:00Z"
ITEMS_PER_REQUEST = 250
SCORES_PER_REQUEST = 1000


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=10_000, help="items of the experiment")
    p.add_argument("--scores-per-item", type=int, default=2, help="scores on each item's trace")
    p.add_argument("--run-scores", type=int, default=3, help="run-level scores")
    p.add_argument("--repeat", type=int, default=10, help="timed requests per single-call case")
    add_server_args(p, load=False)
    return p.parse_args(argv)


def export(experiment_id: str, first: int, count: int, rng: random.Random) -> tuple[bytes, list]:
    """One OTLP request with ``count`` items; returns it and the (trace id, root id) pairs."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "bench-experiments"))
    ss = rs.scope_spans.add()
    ss.scope.name = "langfuse-sdk"
    ids = []
    for n in range(first, first + count):
        trace_id, run_id, root_id = os.urandom(16), os.urandom(8), os.urandom(8)
        start = T0 + n * 10_000_000  # 10 ms apart
        common = [
            kv("langfuse.environment", "sdk-experiment"),
            kv("langfuse.experiment.id", experiment_id),
            kv("langfuse.experiment.name", "bench run"),
            kv("langfuse.experiment.description", "10k items"),
            kv("langfuse.experiment.dataset.id", "bench-dataset"),
            kv("langfuse.experiment.item.id", f"item-{n}"),
            kv("langfuse.experiment.item.root_observation_id", root_id.hex()),
            kv("langfuse.experiment.item.expected_output", json.dumps(f"answer {n}")),
            kv("langfuse.experiment.metadata", json.dumps({"model": "gpt-4o", "n": 1})),
            kv("langfuse.experiment.item.metadata", json.dumps({"topic": rng.choice("abc")})),
        ]
        question = json.dumps({"question": f"what is {n}?", "context": "x" * rng.randint(50, 300)})
        ss.spans.append(
            Span(
                trace_id=trace_id,
                span_id=run_id,
                name="experiment-item-run",
                start_time_unix_nano=start,
                end_time_unix_nano=start + 8_000_000,
                attributes=[*common, kv("langfuse.observation.input", question)],
            )
        )
        ss.spans.append(
            Span(
                trace_id=trace_id,
                span_id=root_id,
                parent_span_id=run_id,
                name="experiment-item-task",
                start_time_unix_nano=start + 1_000_000,
                end_time_unix_nano=start + 6_000_000,
                attributes=[
                    *common,
                    kv("langfuse.observation.input", question),
                    kv("langfuse.observation.output", json.dumps(f"answer {n}")),
                ],
            )
        )
        ids.append((trace_id.hex(), root_id.hex()))
    return req.SerializeToString(), ids


def load(client: httpx.Client, args: argparse.Namespace, experiment_id: str) -> dict[str, Any]:
    rng = random.Random(1)
    started = time.perf_counter()
    items: list[tuple[str, str]] = []
    for first in range(0, args.items, ITEMS_PER_REQUEST):
        body, ids = export(experiment_id, first, min(ITEMS_PER_REQUEST, args.items - first), rng)
        r = client.post(
            "/api/public/otel/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        r.raise_for_status()
        items += ids
    spans_s = time.perf_counter() - started
    started = time.perf_counter()
    scores: list[dict[str, Any]] = []
    names = ["accuracy", "relevance", "helpfulness", "toxicity"][: args.scores_per_item]
    for trace_id, root_id in items:
        for name in names:
            scores.append(
                {"traceId": trace_id, "observationId": root_id, "name": name, "value": rng.random()}
            )
    for at in range(0, len(scores), SCORES_PER_REQUEST):
        r = client.post("/api/public/scores", json=scores[at : at + SCORES_PER_REQUEST])
        r.raise_for_status()
    for i in range(args.run_scores):
        r = client.post(
            "/api/public/scores",
            json={"datasetRunId": experiment_id, "name": f"run_metric_{i}", "value": i / 10},
        )
        r.raise_for_status()
    return {
        "items": len(items),
        "spans": 2 * len(items),
        "item_scores": len(scores),
        "run_scores": args.run_scores,
        "load_spans_s": round(spans_s, 2),
        "load_scores_s": round(time.perf_counter() - started, 2),
    }


def timed(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    r = client.get(path, params=params)
    elapsed = (time.perf_counter() - t) * 1000
    r.raise_for_status()
    return elapsed, r.json()


def walk_items(client: httpx.Client, experiment_id: str) -> dict[str, Any]:
    """Every item page with its scores; also the client-side per-name averages from them."""
    params: dict[str, Any] = {
        "fromStartTime": FROM,
        "experimentId": experiment_id,
        "fields": "core,scores",
        "limit": 100,
    }
    pages: list[float] = []
    items = 0
    sums: dict[str, list[float]] = {}
    started = time.perf_counter()
    while True:
        ms, body = timed(client, "/api/public/experiment-items", params)
        pages.append(ms)
        items += len(body["data"])
        for item in body["data"]:
            for s in item["scores"]:
                acc = sums.setdefault(s["name"], [0.0, 0])
                acc[0] += s["value"]
                acc[1] += 1
        cursor = body["meta"].get("cursor")
        if not cursor:
            break
        params["cursor"] = cursor
    total_ms = (time.perf_counter() - started) * 1000
    return {
        "items": items,
        "pages": len(pages),
        "total_ms": round(total_ms, 1),
        "page_ms": latency_figures(pages),
        "client_averages": {k: round(v[0] / v[1], 4) for k, v in sorted(sums.items())},
    }


def walk_scores(client: httpx.Client, experiment_id: str, n: int) -> dict[str, Any]:
    """Every score of the experiment through the extension route, pages of 10,000, ``n`` times
    (after one warm-up walk): per-page latencies and per-walk totals."""
    path = f"/api/public/experiments/{experiment_id}/scores"
    pages: list[float] = []
    totals: list[float] = []
    counts: dict[str, int] = {}
    for run in range(n + 1):
        params: dict[str, Any] = {"limit": 10_000}
        walk_pages: list[float] = []
        counts = {"item": 0, "run": 0, "pages": 0}
        started = time.perf_counter()
        while True:
            ms, body = timed(client, path, params)
            walk_pages.append(ms)
            for s in body["data"]:
                counts["item" if s["experimentItemId"] else "run"] += 1
            cursor = body["meta"].get("cursor")
            if not cursor:
                break
            params["cursor"] = cursor
        total = (time.perf_counter() - started) * 1000
        counts["pages"] = len(walk_pages)
        if run:  # the first walk warms up
            pages += walk_pages
            totals.append(total)
    return {"page_ms": latency_figures(pages), "total_ms": latency_figures(totals), **counts}


def repeat(client: httpx.Client, n: int, path: str, params: dict[str, Any]) -> dict[str, Any]:
    timed(client, path, params)  # warm-up
    latencies, body = [], None
    for _ in range(n):
        ms, body = timed(client, path, params)
        latencies.append(ms)
    return {"ms": latency_figures(latencies), "body": body}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_facts()
    print("tracehouse experiments benchmark (one large experiment)")
    print_machine(machine)
    print(
        f"params  : {args.items} items, {args.scores_per_item} scores per item, "
        f"{args.run_scores} run scores, {args.repeat} timed requests per case, "
        f"store: {store_label(args)}"
    )
    sys.stdout.flush()
    experiment_id = f"bench-exp-{os.urandom(4).hex()}"

    def measure(server: Server, auth: str, _pid: int | None) -> int:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": auth}, timeout=300
        ) as client:
            loaded = load(client, args, experiment_id)
            print(
                f"load    : {loaded['items']} items ({loaded['spans']} spans) in "
                f"{loaded['load_spans_s']} s, {loaded['item_scores']} item scores + "
                f"{loaded['run_scores']} run scores in {loaded['load_scores_s']} s"
            )
            walk = walk_items(client, experiment_id)
            experiments = repeat(
                client, args.repeat, "/api/public/experiments",
                {"fromStartTime": FROM, "fields": "scores"},
            )  # fmt: skip
            run_scores = repeat(
                client, args.repeat, "/api/public/v3/scores",
                {"experimentId": experiment_id, "limit": 100},
            )  # fmt: skip
            aggregates = repeat(
                client,
                args.repeat,
                f"/api/public/experiments/{experiment_id}/score-aggregates",
                {},
            )
            all_scores = walk_scores(client, experiment_id, args.repeat)
        exp = next(e for e in experiments["body"]["data"] if e["id"] == experiment_id)
        agg = aggregates["body"]
        print()
        print(f"{'case':58} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        rows = [
            ("experiment-items fields=core,scores, one page of 100", walk["page_ms"]),
            ("experiments fields=scores", experiments["ms"]),
            ("v3 scores experimentId= (run-level scores)", run_scores["ms"]),
            ("score-aggregates (all item + run scores)", aggregates["ms"]),
            ("experiment scores limit=10000, one page", all_scores["page_ms"]),
            ("experiment scores, all pages (one walk, total)", all_scores["total_ms"]),
        ]
        for name, ms in rows:
            print(f"{name:58} {fmt(ms['p50']):>8} {fmt(ms['p95']):>8} {fmt(ms['max']):>8}")
        print(
            f"\nall {walk['items']} items with scores: {walk['pages']} pages in "
            f"{walk['total_ms']:.0f} ms (client-side averages {walk['client_averages']})"
        )
        print(
            f"experiments row: itemCount {exp['itemCount']}, {len(exp['scores'])} run scores; "
            f"v3 run scores: {len(run_scores['body']['data'])}"
        )
        averages = {a["name"]: round(a["average"], 4) for a in agg["itemScores"]}
        print(
            f"aggregates: {agg['itemCount']} items, "
            f"{sum(a['count'] for a in agg['itemScores'])} item scores, averages {averages}"
        )
        print(
            f"experiment scores: {all_scores['item']} item + {all_scores['run']} run scores in "
            f"{all_scores['pages']} pages per walk, {args.repeat} walks"
        )
        if args.json:
            print(
                json.dumps(
                    {
                        "bench": "experiments",
                        "machine": machine,
                        "load": loaded,
                        "walk": walk,
                        "experiments_ms": experiments["ms"],
                        "run_scores_ms": run_scores["ms"],
                        "aggregates_ms": aggregates["ms"],
                        "experiment_scores": all_scores,
                    }
                )
            )
        return 0

    return run_against_server(args, measure)


if __name__ == "__main__":
    sys.exit(main())
