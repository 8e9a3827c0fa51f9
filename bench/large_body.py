"""Large bodies: generations with a 5 MB input, through the JSON batch and the OTLP endpoint.

Starts a fresh tracehouse server (or uses ``--url``), sends ``--requests`` requests of each kind
one after another, each carrying one generation whose input is ``--megabytes`` MB of text, and
prints the request latency, the server's RSS (process and children, sampled every 50 ms) before,
at its peak and after, and the peak growth over the idle RSS as a multiple of the body size: the
number of copies of a body the server held at once (an upper bound: it also counts what the
allocator keeps for reuse and SQLite's memory-mapped pages). Every value is read back and
compared. It never asserts.

Run from the repository root::

    .venv/bin/python bench/large_body.py
    .venv/bin/python bench/large_body.py --megabytes 10 --requests 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from _common import (
    add_server_args,
    event_loop_runner,
    machine_facts,
    mib,
    print_machine,
    rss_bytes,
    run_against_server,
    store_label,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def text_of(size: int, seed: int) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(800)]
    return " ".join(rng.choices(words, k=size // 5 + 1))[:size]


def batch_body(value: str) -> tuple[bytes, str]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    obs_id = uuid.uuid4().hex
    body = {
        "batch": [
            {
                "id": uuid.uuid4().hex,
                "type": "generation-create",
                "timestamp": now,
                "body": {
                    "id": obs_id,
                    "model": "gpt-4o",
                    "input": {"document": value},
                    # With usage, as instrumented generations send it: no tokenizing.
                    "usageDetails": {"input": 1_250_000, "output": 100},
                },
            }
        ]
    }
    return json.dumps(body).encode(), obs_id


def otlp_body(value: str) -> tuple[bytes, str]:
    request = ExportTraceServiceRequest()
    span_id = uuid.uuid4().bytes[:8]
    now = time.time_ns()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(
            trace_id=uuid.uuid4().bytes,
            span_id=span_id,
            name="big",
            start_time_unix_nano=now - 1_000_000,
            end_time_unix_nano=now,
        )
    )
    span.attributes.append(
        KeyValue(
            key="langfuse.observation.input",
            value=AnyValue(string_value=json.dumps({"document": value})),
        )
    )
    return request.SerializeToString(), span_id.hex()


async def measure(args: argparse.Namespace, base_url: str, auth: str, pid: int | None) -> int:
    value = text_of(int(args.megabytes * 1_000_000), 7)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": auth}, timeout=120
    ) as client:
        for kind, build, path, ctype in (
            ("json batch", batch_body, "/api/public/ingestion", "application/json"),
            ("otlp", otlp_body, "/api/public/otel/v1/traces", "application/x-protobuf"),
        ):
            samples: list[int] = []
            stop = asyncio.Event()

            async def sample(samples: list[int] = samples, stop: asyncio.Event = stop) -> None:
                while not stop.is_set():
                    if pid:
                        samples.append(rss_bytes(pid))
                    await asyncio.sleep(0.05)

            await asyncio.sleep(1.0)
            idle = rss_bytes(pid) if pid else 0
            sampler = asyncio.create_task(sample())
            latencies, sizes, intact = [], [], 0
            for _ in range(args.requests):
                body, obs_id = build(value)
                sizes.append(len(body))
                t = time.perf_counter()
                r = await client.post(path, content=body, headers={"Content-Type": ctype})
                latencies.append((time.perf_counter() - t) * 1000)
                if r.status_code not in (200, 207):
                    print(f"  {kind}: HTTP {r.status_code} {r.text[:200]}")
                    continue
                got = await client.get(f"/api/public/observations/{obs_id}")
                if got.status_code == 200 and got.json().get("input") == {"document": value}:
                    intact += 1
            stop.set()
            await sampler
            after = rss_bytes(pid) if pid else 0
            peak = max(samples) if samples else 0
            body_size = sum(sizes) / len(sizes)
            results[kind] = {
                "body_mb": round(body_size / 1e6, 2),
                "latency_ms": [round(x, 1) for x in latencies],
                "read_back_intact": f"{intact}/{args.requests}",
                "rss_idle_mib": mib(idle),
                "rss_peak_mib": mib(peak),
                "rss_after_mib": mib(after),
                "peak_growth_in_bodies": round((peak - idle) / body_size, 2) if pid else None,
            }
    print()
    for kind, fig in results.items():
        lat = fig["latency_ms"]
        print(f"{kind}: body {fig['body_mb']} MB, {fig['read_back_intact']} read back intact")
        print(f"  latency ms          median {sorted(lat)[len(lat) // 2]}  max {max(lat)}")
        print(
            f"  server RSS MiB      before {fig['rss_idle_mib']}  peak {fig['rss_peak_mib']}  "
            f"after {fig['rss_after_mib']}  (peak growth = {fig['peak_growth_in_bodies']} "
            f"x the body)"
        )
    if args.json:
        print(json.dumps({"bench": "large_body", "machine": machine_facts(), "figures": results}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Large request bodies: latency and server memory. Never asserts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--megabytes", type=float, default=5.0, help="size of the input value")
    p.add_argument("--requests", type=int, default=5, help="requests of each kind")
    add_server_args(p, load=False)
    args = p.parse_args(argv)
    runner, _ = event_loop_runner()
    print("tracehouse large-body benchmark")
    print_machine(machine_facts())
    print(f"params  : {args.requests} x {args.megabytes:g} MB input per kind, {store_label(args)}")
    sys.stdout.flush()
    return run_against_server(
        args, lambda server, auth, pid: runner(measure(args, server.base_url, auth, pid))
    )


if __name__ == "__main__":
    sys.exit(main())
