"""Sustained-load memory benchmark: does the server's memory stay flat for ten minutes?

Starts a fresh tracehouse server (like ``ingest_otlp.py``), sends the same OTLP protobuf
requests at a steady rate for ``--minutes`` (default 10), samples the server's RSS (process and
children) every ``--sample-every`` seconds, and prints the RSS minute by minute, the growth from
the first to the last minute, and what was stored. Unbounded queues or caches show as RSS that
keeps climbing; a flat line after the first minute (caches and SQLite's page cache filling up)
is the healthy shape. It never asserts.

The rate is fixed (``--rate`` spans/s, default 1,000) rather than flat out, so that the store
grows by a known amount (about 4 KB per span on SQLite: 2.5 GB for ten minutes at 1,000/s).

Run from the repository root::

    .venv/bin/python bench/soak.py                        # 10 minutes, 1,000 spans/s, SQLite
    .venv/bin/python bench/soak.py --minutes 2 --rate 3000
    .venv/bin/python bench/soak.py --workers 2 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx
from _common import (
    add_server_args,
    count_traces,
    event_loop_runner,
    latency_figures,
    machine_facts,
    mib,
    print_machine,
    rss_bytes,
    run_against_server,
    store_label,
    wait_for_traces,
)
from ingest_otlp import OTLP_PATH, SPANS_PER_TRACE, BodyFactory


async def _sender(
    client: httpx.AsyncClient,
    factory: BodyFactory,
    interval_s: float,
    stop_at: float,
    out: dict[str, Any],
    offset_s: float = 0.0,
) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    next_at = time.perf_counter() + offset_s  # senders take turns instead of firing together
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            return
        if next_at > now:
            await asyncio.sleep(next_at - now)
        next_at += interval_s
        body, trace_ids = factory.build()
        t = time.perf_counter()
        try:
            r = await client.post(OTLP_PATH, content=body, headers=headers)
            status = str(r.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        out["latencies_ms"].append((time.perf_counter() - t) * 1000)
        out["statuses"][status] = out["statuses"].get(status, 0) + 1
        if status == "200":
            out["traces_accepted"] += len(trace_ids)


async def soak(args: argparse.Namespace, base_url: str, auth: str, pid: int | None) -> int:
    factory = BodyFactory(args.traces_per_request, seed=args.seed)
    senders = max(1, args.clients)
    # Each sender posts one request every `interval` seconds: together `rate` spans/s.
    interval = senders * factory.spans_per_request / args.rate
    duration = args.minutes * 60
    out: dict[str, Any] = {"latencies_ms": [], "statuses": {}, "traces_accepted": 0}
    series: list[tuple[float, int]] = []
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": auth}, timeout=60.0
    ) as client:
        before = await count_traces(client)
        t0 = time.perf_counter()
        stop_at = t0 + duration

        async def sample() -> None:
            while time.perf_counter() < stop_at + 1:
                if pid:
                    series.append((time.perf_counter() - t0, rss_bytes(pid)))
                await asyncio.sleep(args.sample_every)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(
            *(
                _sender(client, factory, interval, stop_at, out, interval * i / senders)
                for i in range(senders)
            )
        )
        elapsed = time.perf_counter() - t0
        await sampler
        check = await wait_for_traces(client, before, out["traces_accepted"], args.verify_timeout)
    if pid:
        series.append((time.perf_counter() - t0, rss_bytes(pid)))

    per_minute: list[dict[str, Any]] = []
    for minute in range(int(args.minutes + 0.999)):
        window = [rss for t, rss in series if minute * 60 <= t < (minute + 1) * 60]
        if window:
            per_minute.append(
                {"minute": minute + 1, "min": mib(min(window)), "max": mib(max(window))}
            )
    spans = out["traces_accepted"] * SPANS_PER_TRACE
    figures = {
        "minutes": args.minutes,
        "rate_target_spans_per_s": args.rate,
        "spans_accepted": spans,
        "spans_per_s": round(spans / elapsed, 1),
        "latency_ms": latency_figures(out["latencies_ms"]),
        "http_statuses": out["statuses"],
        "rss_mib_per_minute": per_minute,
        "rss_growth_first_to_last_minute_mib": (
            round(per_minute[-1]["max"] - per_minute[0]["max"], 1) if len(per_minute) > 1 else None
        ),
        "rss_growth_after_minute_2_mib": (
            round(per_minute[-1]["max"] - per_minute[1]["max"], 1) if len(per_minute) > 2 else None
        ),
        "data_check": check,
    }
    lat = figures["latency_ms"]
    print()
    print(f"sent for {elapsed:.0f} s at {args.rate:,} spans/s target")
    print(f"  spans accepted      {spans:,} ({figures['spans_per_s']:,.0f} /s)")
    print(f"  latency ms          p50 {lat['p50']}  p99 {lat['p99']}  max {lat['max']}")
    print(f"  HTTP statuses       {out['statuses']}")
    print("  server RSS MiB per minute (min .. max)")
    for row in per_minute:
        print(f"    minute {row['minute']:>3}     {row['min']:>7.1f} .. {row['max']:>7.1f}")
    print(
        f"  RSS growth          first -> last minute "
        f"{figures['rss_growth_first_to_last_minute_mib']} MiB; "
        f"minute 2 -> last {figures['rss_growth_after_minute_2_mib']} MiB"
    )
    verdict = {True: "match", False: "MISMATCH", None: "unknown"}[check["match"]]
    print(f"  data check          {verdict} ({check['server_total_items_after']} traces stored)")
    if args.json:
        print(json.dumps({"bench": "soak", "machine": machine_facts(), "figures": figures}))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Sustained OTLP load; prints the server's RSS minute by minute.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=10.0, help="how long to send")
    p.add_argument("--rate", type=float, default=1000.0, help="spans per second to send")
    p.add_argument("--clients", type=int, default=4, help="concurrent senders")
    p.add_argument("--traces-per-request", type=int, default=10, help="traces per request")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--workers", type=int, default=1, help="API processes of the started server")
    add_server_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers > 1:
        os.environ["TRACEHOUSE_WORKERS"] = str(args.workers)
    runner, _ = event_loop_runner()
    print("tracehouse soak benchmark (steady OTLP load, memory over time)")
    print_machine(machine_facts())
    print(
        f"params  : {args.minutes:g} min at {args.rate:,.0f} spans/s, {args.clients} senders, "
        f"{args.traces_per_request} traces/request, store: {store_label(args)}, "
        f"{args.workers} API process(es)"
    )
    sys.stdout.flush()
    return run_against_server(
        args, lambda server, auth, pid: runner(soak(args, server.base_url, auth, pid))
    )


if __name__ == "__main__":
    sys.exit(main())
