"""Throughput benchmark of JSON batch ingestion (``POST /api/public/ingestion``).

Starts a fresh tracehouse server in a subprocess (its own temporary data directory and a
bench project with the keys ``pk-lf-bench`` / ``sk-lf-bench``), drives it with concurrent clients
posting realistic Langfuse ingestion batches, and prints figures. It never asserts anything.

Each trace in a batch is one ``trace-create`` plus nine observation events (spans, generations
with model/usage/chat-message input, events, and span/generation updates that set
``endTime``/``output``), linked by ``parentObservationId``; every id is a fresh uuid4.

Run from the repository root::

    .venv/bin/python bench/ingest_batch.py                        # 8 clients, 20 s, SQLite
    .venv/bin/python bench/ingest_batch.py --clients 4 --traces-per-batch 10 --duration 60
    .venv/bin/python bench/ingest_batch.py --events 100000 --json
    .venv/bin/python bench/ingest_batch.py --database-url postgresql+psycopg://u:p@host/db
    .venv/bin/python bench/ingest_batch.py --dry-run              # no server: one batch's shape
    .venv/bin/python bench/ingest_batch.py --url http://localhost:3000 \\
        --public-key pk-lf-... --secret-key sk-lf-...             # an already running server

Figures: events/s accepted (events listed in ``successes`` of the 207 reply; rejected events are
counted and summarised separately), request latency p50/p95/p99, request count, server RSS
(process + children, sampled every 0.5 s: idle, peak, final), server and client CPU time over the
measured window, and a data check (``GET /api/public/traces?limit=1`` ``meta.totalItems`` against
the traces sent). The first ``--warmup`` seconds (default 2) are excluded from the figures.

The client stays a single process and cheap: trace payloads are pre-built once into a pool of
templates; each request only swaps ids and timestamps into shallow copies and serialises with
orjson.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from _common import (
    Plan,
    ResourceMonitor,
    Server,
    Tally,
    add_server_args,
    count_traces,
    event_loop_runner,
    fmt,
    latency_figures,
    machine_facts,
    print_errors,
    print_latency_and_resources,
    print_machine,
    prose,
    run_against_server,
    store_label,
    wait_for_traces,
)

EVENTS_PER_TRACE = 10
TEMPLATE_POOL_SIZE = 64

# --------------------------------------------------------------------------------------------
# Payload generation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceTemplate:
    """The fixed content of one trace; ids and timestamps are filled in per request."""

    trace: dict[str, Any]
    span_root: dict[str, Any]
    gen_1: dict[str, Any]
    span_retrieval: dict[str, Any]
    event_cache: dict[str, Any]
    span_retrieval_update: dict[str, Any]
    gen_2: dict[str, Any]
    gen_2_update: dict[str, Any]
    event_log: dict[str, Any]
    span_root_update: dict[str, Any]
    offsets_ms: tuple[int, ...]  # start offsets of the steps after the trace


def build_template(rng: random.Random, index: int) -> TraceTemplate:
    user = f"user-{rng.randrange(1000):04d}"
    question = prose(rng, 1000)
    answer = prose(rng, 1000)
    system = prose(rng, 300)
    user_msg = prose(rng, 700)
    gen_out = prose(rng, 1000)
    docs = [{"id": f"doc-{rng.randrange(10**6)}", "text": prose(rng, 180)} for _ in range(5)]
    in_tok, out_tok = rng.randrange(200, 1200), rng.randrange(50, 600)
    in_tok2, out_tok2 = rng.randrange(400, 2000), rng.randrange(50, 800)
    return TraceTemplate(
        trace={
            "name": rng.choice(["chat-turn", "rag-query", "support-agent", "summarise"]),
            "userId": user,
            "sessionId": f"session-{index:03d}-{rng.randrange(10**6):06d}",
            "tags": rng.sample(["bench", "prod", "beta", "rag", "eu", "mobile", "web"], 3),
            "metadata": {
                "app_version": f"1.{rng.randrange(20)}.{rng.randrange(10)}",
                "region": rng.choice(["eu-west-1", "us-east-1"]),
                "feature_flags": rng.sample(["a", "b", "c", "d", "e"], 2),
            },
            "input": {"question": question},
            "output": {"answer": answer},
            "release": "bench-release",
            "version": "v1",
        },
        span_root={"name": "handle-request", "input": {"question": question[:200]}},
        gen_1={
            "name": "rewrite-query",
            "model": "gpt-4o",
            "modelParameters": {"temperature": 0.2, "max_tokens": 256},
            "input": [
                {"role": "system", "content": system},
                {"role": "user", "content": user_msg},
            ],
            "output": {"role": "assistant", "content": gen_out},
            "usage": {"input": in_tok, "output": out_tok},
            "metadata": {"attempt": 1},
        },
        span_retrieval={
            "name": "retrieve-documents",
            "input": {"query": question[:120], "top_k": 5},
            "metadata": {"index": "kb-main"},
        },
        event_cache={"name": "cache-miss", "level": "DEBUG", "input": {"key": f"kb:{index}"}},
        span_retrieval_update={"output": {"documents": docs}},
        gen_2={
            "name": "answer",
            "model": "gpt-4o",
            "modelParameters": {"temperature": 0.7, "max_tokens": 1024, "stream": True},
            "input": [
                {"role": "system", "content": system},
                {"role": "user", "content": user_msg},
                {"role": "assistant", "content": gen_out[:200]},
            ],
            "metadata": {"attempt": 1, "stream": True},
        },
        gen_2_update={
            "output": {"role": "assistant", "content": answer},
            "usage": {"input": in_tok2, "output": out_tok2},
        },
        event_log={"name": "guardrail-check", "level": "DEFAULT", "output": {"passed": True}},
        span_root_update={"output": {"answer": answer[:200]}},
        offsets_ms=tuple(sorted(rng.randrange(1, 3000) for _ in range(12))),
    )


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uid() -> str:
    return str(uuid.uuid4())


def render_trace(tpl: TraceTemplate, now: datetime) -> list[dict[str, Any]]:
    """The ten events of one trace, with fresh ids and timestamps around ``now``."""
    trace_id = _uid()
    root, gen1, retr, ev_cache, gen2, ev_log = (_uid() for _ in range(6))
    o = tpl.offsets_ms
    t0 = now - timedelta(milliseconds=o[-1] + 50)
    ts = [_iso(t0 + timedelta(milliseconds=ms)) for ms in o]
    start = _iso(t0)
    sent = _iso(now)

    def ev(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": _uid(), "type": kind, "timestamp": sent, "body": body}

    return [
        ev("trace-create", {**tpl.trace, "id": trace_id, "timestamp": start}),
        ev("span-create", {**tpl.span_root, "id": root, "traceId": trace_id, "startTime": start}),
        ev(
            "generation-create",
            {
                **tpl.gen_1,
                "id": gen1,
                "traceId": trace_id,
                "parentObservationId": root,
                "startTime": ts[0],
                "completionStartTime": ts[1],
                "endTime": ts[2],
            },
        ),
        ev(
            "span-create",
            {
                **tpl.span_retrieval,
                "id": retr,
                "traceId": trace_id,
                "parentObservationId": root,
                "startTime": ts[3],
            },
        ),
        ev(
            "event-create",
            {
                **tpl.event_cache,
                "id": ev_cache,
                "traceId": trace_id,
                "parentObservationId": retr,
                "startTime": ts[4],
            },
        ),
        ev(
            "span-update",
            {**tpl.span_retrieval_update, "id": retr, "traceId": trace_id, "endTime": ts[5]},
        ),
        ev(
            "generation-create",
            {
                **tpl.gen_2,
                "id": gen2,
                "traceId": trace_id,
                "parentObservationId": root,
                "startTime": ts[6],
                "completionStartTime": ts[7],
            },
        ),
        ev(
            "generation-update",
            {**tpl.gen_2_update, "id": gen2, "traceId": trace_id, "endTime": ts[9]},
        ),
        ev(
            "event-create",
            {
                **tpl.event_log,
                "id": ev_log,
                "traceId": trace_id,
                "parentObservationId": gen2,
                "startTime": ts[10],
            },
        ),
        ev(
            "span-update",
            {**tpl.span_root_update, "id": root, "traceId": trace_id, "endTime": ts[11]},
        ),
    ]


class BatchFactory:
    """Builds request bodies: ``traces_per_batch`` traces drawn round-robin from the pool."""

    def __init__(self, traces_per_batch: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.pool = [build_template(rng, i) for i in range(TEMPLATE_POOL_SIZE)]
        self.traces_per_batch = traces_per_batch
        self.events_per_batch = traces_per_batch * EVENTS_PER_TRACE
        self._next = 0

    def build(self) -> tuple[bytes, list[str]]:
        """A request body and the envelope ids of its ``trace-create`` events."""
        now = datetime.now(UTC)
        batch: list[dict[str, Any]] = []
        trace_event_ids: list[str] = []
        for _ in range(self.traces_per_batch):
            tpl = self.pool[self._next % len(self.pool)]
            self._next += 1
            events = render_trace(tpl, now)
            trace_event_ids.append(events[0]["id"])
            batch.extend(events)
        return orjson.dumps({"batch": batch}), trace_event_ids


def dry_run(args: argparse.Namespace) -> int:
    factory = BatchFactory(args.traces_per_batch, seed=args.seed)
    body, _ = factory.build()
    batch = orjson.loads(body)["batch"]
    kinds = collections.Counter(e["type"] for e in batch)
    ids = [e["id"] for e in batch]
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        factory.build()
    per_batch_ms = (time.perf_counter() - t) / n * 1000
    print("dry run: one request body (nothing is sent)")
    print(f"  traces              {args.traces_per_batch}")
    print(f"  events              {len(batch)}")
    for kind, count in sorted(kinds.items()):
        print(f"    {kind:<19} {count}")
    print(f"  body size           {len(body):,} bytes ({len(body) / len(batch):,.0f} B/event)")
    print(f"  unique event ids    {len(set(ids)) == len(ids)}")
    print(f"  build cost          {per_batch_ms:.3f} ms/request (client side, {n} runs)")
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": True,
                    "traces": args.traces_per_batch,
                    "events": len(batch),
                    "event_types": dict(kinds),
                    "body_bytes": len(body),
                    "build_ms_per_request": round(per_batch_ms, 4),
                }
            )
        )
    return 0


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class Totals:
    """Across warm-up and measured phase: what the server should hold afterwards."""

    traces_sent: int = 0
    trace_creates_accepted: int = 0


def _error_key(entry: dict[str, Any]) -> str:
    detail = entry.get("message") or entry.get("error") or ""
    if not isinstance(detail, str):
        detail = json.dumps(detail)[:120]
    return f"{entry.get('status')} {detail[:160]}"


async def client_loop(
    base_url: str,
    auth: str,
    factory: BatchFactory,
    plan: Plan,
    measured: Tally,
    warm: Tally,
    totals: Totals,
) -> None:
    headers = {
        "Authorization": auth,
        "Content-Type": "application/json",
        "x-langfuse-sdk-name": "tracehouse-bench",
    }
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        while True:
            start = time.perf_counter()
            if not plan.may_send(start, factory.events_per_batch):
                return
            body, trace_event_ids = factory.build()
            tally = measured if start >= plan.warm_until else warm
            totals.traces_sent += factory.traces_per_batch
            t = time.perf_counter()
            try:
                r = await client.post("/api/public/ingestion", content=body, headers=headers)
                payload = r.content
            except httpx.HTTPError as exc:
                done = time.perf_counter()
                tally.requests += 1
                tally.sent += factory.events_per_batch
                tally.rejected += factory.events_per_batch
                tally.statuses[type(exc).__name__] += 1
                tally.errors[f"transport {type(exc).__name__}: {exc}"[:200]] += 1
                tally.last_done = done
                await asyncio.sleep(0.05)
                continue
            done = time.perf_counter()
            tally.requests += 1
            tally.sent += factory.events_per_batch
            tally.latencies_ms.append((done - t) * 1000)
            tally.statuses[str(r.status_code)] += 1
            tally.last_done = done
            if r.status_code == 207:
                reply = orjson.loads(payload)
                successes = reply.get("successes", [])
                errors = reply.get("errors", [])
                tally.accepted += len(successes)
                tally.rejected += len(errors)
                for entry in errors:
                    tally.errors[_error_key(entry)] += 1
                accepted_ids = {s.get("id") for s in successes}
                totals.trace_creates_accepted += sum(i in accepted_ids for i in trace_event_ids)
            else:
                tally.rejected += factory.events_per_batch
                tally.errors[f"HTTP {r.status_code}: {payload[:160].decode(errors='replace')}"] += 1


async def run_load(
    args: argparse.Namespace, base_url: str, auth: str, server_pid: int | None
) -> dict[str, Any]:
    factory = BatchFactory(args.traces_per_batch, seed=args.seed)
    check = httpx.AsyncClient(base_url=base_url, headers={"Authorization": auth}, timeout=30.0)
    traces_before = await count_traces(check)
    monitor = ResourceMonitor(server_pid)
    await monitor.start()

    t0 = time.perf_counter()
    plan = Plan(
        warm_until=t0 + args.warmup,
        stop_at=None if args.events else t0 + args.warmup + args.duration,
        budget=args.events,
    )
    measured, warm, totals = Tally(), Tally(), Totals()
    marker = asyncio.create_task(monitor.mark_after(args.warmup))
    clients = [
        client_loop(base_url, auth, factory, plan, measured, warm, totals)
        for _ in range(args.clients)
    ]
    await asyncio.gather(*clients)
    marker.cancel()  # a run shorter than the warm-up measures from its end
    elapsed = max(measured.last_done - plan.warm_until, 1e-9)
    cpu = monitor.cpu(elapsed)

    # Data check: wait (up to --verify-timeout) for the server to show every accepted trace.
    expected = totals.trace_creates_accepted
    data_check = await wait_for_traces(check, traces_before, expected, args.verify_timeout)
    await check.aclose()
    rss = await monitor.stop()

    return {
        "measured_s": round(elapsed, 3),
        "requests": measured.requests,
        "events_sent": measured.sent,
        "events_accepted": measured.accepted,
        "events_rejected": measured.rejected,
        "events_per_s": round(measured.accepted / elapsed, 1),
        "traces_per_s": round(measured.accepted / EVENTS_PER_TRACE / elapsed, 1),
        "requests_per_s": round(measured.requests / elapsed, 2),
        "latency_ms": latency_figures(measured.latencies_ms),
        "http_statuses": dict(measured.statuses),
        "errors": dict(measured.errors.most_common(10)),
        "warmup": {
            "requests": warm.requests,
            "events_accepted": warm.accepted,
            "events_rejected": warm.rejected,
            "errors": dict(warm.errors.most_common(5)),
        },
        "server_rss_mib": rss,
        "cpu_s": cpu,
        "data_check": {
            "traces_sent": totals.traces_sent,
            "trace_creates_accepted": expected,
            **data_check,
        },
    }


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def print_header(args: argparse.Namespace, machine: dict[str, Any], loop_name: str) -> None:
    events = args.traces_per_batch * EVENTS_PER_TRACE
    end = f"{args.events:,} events" if args.events else f"{args.duration:g} s"
    print("tracehouse ingestion benchmark (POST /api/public/ingestion)")
    print_machine(machine)
    print(
        f"params  : {args.clients} clients x {args.traces_per_batch} traces/batch "
        f"({events} events/request), {end} after {args.warmup:g} s warm-up, "
        f"store: {store_label(args)}, client loop: {loop_name}"
    )
    sys.stdout.flush()


def print_figures(fig: dict[str, Any]) -> None:
    dc = fig["data_check"]
    print()
    print("figures (measured window, warm-up excluded)")
    print(f"  window              {fig['measured_s']:.2f} s")
    print(f"  requests            {fig['requests']:,}  ({fig['requests_per_s']:.1f} /s)")
    print(f"  events accepted     {fig['events_accepted']:,}  ({fig['events_per_s']:,.1f} /s)")
    print(f"  traces accepted     {fig['events_accepted'] // EVENTS_PER_TRACE:,}  ", end="")
    print(f"({fig['traces_per_s']:,.1f} /s)")
    print(f"  events rejected     {fig['events_rejected']:,}")
    print_latency_and_resources(fig)
    verdict = {True: "match", False: "MISMATCH", None: "unknown"}[dc["match"]]
    print(
        f"  data check          traces sent {dc['traces_sent']:,} (incl. warm-up), "
        f"trace-create accepted {dc['trace_creates_accepted']:,}, "
        f"server totalItems {fmt(dc['server_total_items_after'], ',')} "
        f"(before {fmt(dc['server_total_items_before'], ',')}) -> {verdict} "
        f"after {dc['wait_s']:.2f} s"
    )
    print_errors(fig["errors"] or fig["warmup"]["errors"])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark tracehouse's JSON batch ingestion. Prints figures; never asserts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--traces-per-batch", type=int, default=5, help="traces per request (x10 events)"
    )
    p.add_argument(
        "--clients", type=int, default=8, help="concurrent clients (one connection each)"
    )
    end = p.add_mutually_exclusive_group()
    end.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    end.add_argument(
        "--events", type=int, default=None, help="measured events to send (instead of --duration)"
    )
    p.add_argument("--dry-run", action="store_true", help="build one batch, print its shape, exit")
    add_server_args(p)
    args = p.parse_args(argv)
    if args.traces_per_batch < 1 or args.clients < 1:
        p.error("--traces-per-batch and --clients must be at least 1")
    if args.events is not None and args.events < 1:
        p.error("--events must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        return dry_run(args)

    machine = machine_facts()
    runner, loop_name = event_loop_runner()
    print_header(args, machine, loop_name)

    def measure(server: Server, auth: str, server_pid: int | None) -> int:
        figures = runner(run_load(args, server.base_url, auth, server_pid))
        print_figures(figures)
        if args.json:
            print(
                json.dumps(
                    {
                        "bench": "ingest_batch",
                        "machine": machine,
                        "params": {
                            "traces_per_batch": args.traces_per_batch,
                            "events_per_request": args.traces_per_batch * EVENTS_PER_TRACE,
                            "clients": args.clients,
                            "duration_s": None if args.events else args.duration,
                            "events": args.events,
                            "warmup_s": args.warmup,
                            "store": "postgres" if args.database_url else "sqlite",
                            "external_url": args.url,
                            "client_loop": loop_name,
                        },
                        "server_ready_s": round(server.ready_s, 3),
                        "figures": figures,
                    }
                )
            )
        return 0

    return run_against_server(args, measure)


if __name__ == "__main__":
    sys.exit(main())
