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
import base64
import collections
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
ORG_ID = "bench-org"
PROJECT_ID = "bench-project"
PUBLIC_KEY = "pk-lf-bench"
SECRET_KEY = "sk-lf-bench"
EVENTS_PER_TRACE = 10
TEMPLATE_POOL_SIZE = 64
RSS_SAMPLE_S = 0.5
MIB = 1024 * 1024

# --------------------------------------------------------------------------------------------
# Payload generation
# --------------------------------------------------------------------------------------------

_WORD_TEXT = (
    "the a model answer question context document retrieval latency token user system "
    "assistant invoice refund policy customer order shipping account password reset billing "
    "summary translate german english python error stack trace database index query cache "
    "vector embedding chunk score relevance prompt template version label production staging "
    "please could you explain why how when where which because therefore however"
)
_WORDS = tuple(_WORD_TEXT.split())


def _text(rng: random.Random, n_chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    text = " ".join(words)[:n_chars]
    return text[0].upper() + text[1:] + "."


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
    question = _text(rng, 1000)
    answer = _text(rng, 1000)
    system = _text(rng, 300)
    user_msg = _text(rng, 700)
    gen_out = _text(rng, 1000)
    docs = [{"id": f"doc-{rng.randrange(10**6)}", "text": _text(rng, 180)} for _ in range(5)]
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
# Server process
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    ready_s: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_server(args: argparse.Namespace) -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="tracehouse-bench-"))
    port = free_port()
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        TRACEHOUSE_DATA_DIR=str(workdir / "data"),
        LANGFUSE_INIT_ORG_ID=ORG_ID,
        LANGFUSE_INIT_PROJECT_ID=PROJECT_ID,
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY=PUBLIC_KEY,
        LANGFUSE_INIT_PROJECT_SECRET_KEY=SECRET_KEY,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p),
    )
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    log_path = workdir / "server.log"
    cmd = [sys.executable, "-m", "tracehouse", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(f"http://127.0.0.1:{port}", proc, workdir, log_path)


def wait_ready(server: Server, timeout_s: float) -> None:
    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {server.proc.returncode}")
            try:
                r = client.get(server.base_url + "/api/public/health")
                if r.status_code == 200:
                    server.ready_s = time.perf_counter() - t0
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {timeout_s:.0f} s (last: {last})")


def stop_server(server: Server) -> str:
    """SIGTERM, then SIGKILL after 10 s; remove the temp dir. Says how the server ended."""
    proc = server.proc
    how = "not started"
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
            how = "stopped on SIGTERM"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            how = "killed (no exit 10 s after SIGTERM)"
    elif proc is not None:
        how = "had already exited"
    if proc is not None:
        code = proc.returncode
        # uvicorn re-raises the signal it shut down on, so -15 is the normal outcome.
        how += f", exit {signal.Signals(-code).name}" if code < 0 else f", exit code {code}"
    if server.workdir is not None:
        shutil.rmtree(server.workdir, ignore_errors=True)
    return how


# --------------------------------------------------------------------------------------------
# Resource sampling
# --------------------------------------------------------------------------------------------


def _family(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def rss_bytes(pid: int) -> int:
    total = 0
    for p in _family(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in _family(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def client_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class RssSampler:
    pid: int
    samples: list[int] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            value = rss_bytes(self.pid)
            if value:
                self.samples.append(value)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RSS_SAMPLE_S)


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    events_sent: int = 0
    accepted: int = 0
    rejected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    last_done: float = 0.0


@dataclass
class Totals:
    """Across warm-up and measured phase: what the server should hold afterwards."""

    traces_sent: int = 0
    trace_creates_accepted: int = 0


@dataclass
class Plan:
    warm_until: float
    stop_at: float | None  # time-based end (None with --events)
    events_budget: int | None  # events to send in the measured phase (with --events)
    events_reserved: int = 0

    def may_send(self, now: float, n_events: int) -> bool:
        if self.stop_at is not None:
            return now < self.stop_at
        if now < self.warm_until:
            return True
        assert self.events_budget is not None
        if self.events_reserved >= self.events_budget:
            return False
        self.events_reserved += n_events
        return True


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
                tally.events_sent += factory.events_per_batch
                tally.rejected += factory.events_per_batch
                tally.statuses[type(exc).__name__] += 1
                tally.errors[f"transport {type(exc).__name__}: {exc}"[:200]] += 1
                tally.last_done = done
                await asyncio.sleep(0.05)
                continue
            done = time.perf_counter()
            tally.requests += 1
            tally.events_sent += factory.events_per_batch
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


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, int(round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def count_traces(client: httpx.AsyncClient) -> int | None:
    try:
        r = await client.get("/api/public/traces", params={"limit": 1})
        if r.status_code != 200:
            return None
        return int(r.json()["meta"]["totalItems"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None


async def run_load(
    args: argparse.Namespace, base_url: str, auth: str, server_pid: int | None
) -> dict[str, Any]:
    factory = BatchFactory(args.traces_per_batch, seed=args.seed)
    check = httpx.AsyncClient(base_url=base_url, headers={"Authorization": auth}, timeout=30.0)
    traces_before = await count_traces(check)

    stop_sampling = asyncio.Event()
    sampler = RssSampler(server_pid) if server_pid else None
    sampler_task = asyncio.create_task(sampler.run(stop_sampling)) if sampler else None
    await asyncio.sleep(0)
    rss_idle = rss_bytes(server_pid) if server_pid else 0

    t0 = time.perf_counter()
    plan = Plan(
        warm_until=t0 + args.warmup,
        stop_at=None if args.events else t0 + args.warmup + args.duration,
        events_budget=args.events,
    )
    measured, warm, totals = Tally(), Tally(), Totals()
    window: dict[str, float] = {}

    async def mark_window_start() -> None:
        await asyncio.sleep(args.warmup)
        window["client_cpu"] = client_cpu_seconds()
        window["server_cpu"] = cpu_seconds(server_pid) if server_pid else 0.0

    marker = asyncio.create_task(mark_window_start())
    clients = [
        client_loop(base_url, auth, factory, plan, measured, warm, totals)
        for _ in range(args.clients)
    ]
    await asyncio.gather(*clients)
    if not marker.done():  # the whole run was shorter than the warm-up
        marker.cancel()
        window.setdefault("client_cpu", client_cpu_seconds())
        window.setdefault("server_cpu", cpu_seconds(server_pid) if server_pid else 0.0)
    client_cpu = client_cpu_seconds() - window["client_cpu"]
    server_cpu = (cpu_seconds(server_pid) - window["server_cpu"]) if server_pid else None
    elapsed = max(measured.last_done - plan.warm_until, 1e-9)

    # Data check: wait (up to --verify-timeout) for the server to show every accepted trace.
    expected = totals.trace_creates_accepted
    t_verify = time.perf_counter()
    traces_after = await count_traces(check)
    while (
        traces_after is not None
        and traces_before is not None
        and traces_after - traces_before < expected
        and time.perf_counter() - t_verify < args.verify_timeout
    ):
        await asyncio.sleep(0.25)
        traces_after = await count_traces(check)
    verify_wait = time.perf_counter() - t_verify
    await check.aclose()

    stop_sampling.set()
    if sampler_task:
        await sampler_task
    rss_final = rss_bytes(server_pid) if server_pid else 0
    samples = sampler.samples if sampler else []

    lat = sorted(measured.latencies_ms)
    new_traces = (
        traces_after - traces_before
        if traces_after is not None and traces_before is not None
        else None
    )
    return {
        "measured_s": round(elapsed, 3),
        "requests": measured.requests,
        "events_sent": measured.events_sent,
        "events_accepted": measured.accepted,
        "events_rejected": measured.rejected,
        "events_per_s": round(measured.accepted / elapsed, 1),
        "traces_per_s": round(measured.accepted / EVENTS_PER_TRACE / elapsed, 1),
        "requests_per_s": round(measured.requests / elapsed, 2),
        "latency_ms": {
            "p50": _r(percentile(lat, 50)),
            "p95": _r(percentile(lat, 95)),
            "p99": _r(percentile(lat, 99)),
            "max": _r(lat[-1] if lat else None),
            "mean": _r(sum(lat) / len(lat) if lat else None),
        },
        "http_statuses": dict(measured.statuses),
        "errors": dict(measured.errors.most_common(10)),
        "warmup": {
            "requests": warm.requests,
            "events_accepted": warm.accepted,
            "events_rejected": warm.rejected,
            "errors": dict(warm.errors.most_common(5)),
        },
        "server_rss_mib": {
            "idle": _mib(rss_idle),
            "peak": _mib(max(samples)) if samples else None,
            "final": _mib(rss_final),
            "samples": len(samples),
        }
        if server_pid
        else None,
        "cpu_s": {
            "client": round(client_cpu, 2),
            "server": round(server_cpu, 2) if server_cpu is not None else None,
            "client_pct_of_core": round(100 * client_cpu / elapsed, 1),
            "server_pct_of_core": round(100 * server_cpu / elapsed, 1)
            if server_cpu is not None
            else None,
        },
        "data_check": {
            "traces_sent": totals.traces_sent,
            "trace_creates_accepted": expected,
            "server_total_items_before": traces_before,
            "server_total_items_after": traces_after,
            "server_new_traces": new_traces,
            "match": new_traces == expected if new_traces is not None else None,
            "wait_s": round(verify_wait, 2),
        },
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _mib(value: int | None) -> float | None:
    return None if not value else round(value / MIB, 1)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        import tracehouse

        version = tracehouse.__version__
    except Exception:  # the bench must run even if the package does not import
        version = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "tracehouse": version,
    }


def print_header(args: argparse.Namespace, machine: dict[str, Any], loop_name: str) -> None:
    events = args.traces_per_batch * EVENTS_PER_TRACE
    end = f"{args.events:,} events" if args.events else f"{args.duration:g} s"
    if args.url:
        store = f"external server {args.url}"
    elif args.database_url:
        store = f"DATABASE_URL={mask_url(args.database_url)}"
    else:
        store = "SQLite in a fresh temp dir"
    print("tracehouse ingestion benchmark (POST /api/public/ingestion)")
    print(
        f"machine : {machine['cores']} cores ({machine['cores_usable']} usable), "
        f"{machine['ram_gib']} GiB RAM, Python {machine['python']}, {machine['platform']}"
    )
    print(
        f"params  : {args.clients} clients x {args.traces_per_batch} traces/batch "
        f"({events} events/request), {end} after {args.warmup:g} s warm-up, "
        f"store: {store}, client loop: {loop_name}"
    )
    sys.stdout.flush()


def print_figures(fig: dict[str, Any]) -> None:
    lat = fig["latency_ms"]
    cpu = fig["cpu_s"]
    rss = fig["server_rss_mib"]
    dc = fig["data_check"]

    def f(v: Any, spec: str = ".1f") -> str:
        return "n/a" if v is None else format(v, spec)

    print()
    print("figures (measured window, warm-up excluded)")
    print(f"  window              {fig['measured_s']:.2f} s")
    print(f"  requests            {fig['requests']:,}  ({fig['requests_per_s']:.1f} /s)")
    print(f"  events accepted     {fig['events_accepted']:,}  ({fig['events_per_s']:,.1f} /s)")
    print(f"  traces accepted     {fig['events_accepted'] // EVENTS_PER_TRACE:,}  ", end="")
    print(f"({fig['traces_per_s']:,.1f} /s)")
    print(f"  events rejected     {fig['events_rejected']:,}")
    print(
        f"  latency ms          p50 {f(lat['p50'])}  p95 {f(lat['p95'])}  "
        f"p99 {f(lat['p99'])}  max {f(lat['max'])}  mean {f(lat['mean'])}"
    )
    print(f"  HTTP statuses       {fig['http_statuses']}")
    if rss:
        print(
            f"  server RSS MiB      idle {f(rss['idle'])}  peak {f(rss['peak'])}  "
            f"final {f(rss['final'])}  ({rss['samples']} samples)"
        )
    server_cpu = (
        f"{cpu['server']:.2f} ({cpu['server_pct_of_core']:.1f}%)"
        if cpu["server"] is not None
        else "n/a (no server pid)"
    )
    print(
        f"  CPU s (% of a core) server {server_cpu}  "
        f"client {cpu['client']:.2f} ({cpu['client_pct_of_core']:.1f}%)"
    )
    verdict = {True: "match", False: "MISMATCH", None: "unknown"}[dc["match"]]
    print(
        f"  data check          traces sent {dc['traces_sent']:,} (incl. warm-up), "
        f"trace-create accepted {dc['trace_creates_accepted']:,}, "
        f"server totalItems {f(dc['server_total_items_after'], ',')} "
        f"(before {f(dc['server_total_items_before'], ',')}) -> {verdict} "
        f"after {dc['wait_s']:.2f} s"
    )
    errors = fig["errors"] or fig["warmup"]["errors"]
    if errors:
        print("  errors (most frequent first)")
        for key, count in errors.items():
            print(f"    {count:>8,}  {key}")


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
    p.add_argument("--warmup", type=float, default=2.0, help="seconds excluded from the figures")
    p.add_argument("--database-url", default=None, help="passed to the server as DATABASE_URL")
    p.add_argument("--json", action="store_true", help="also print one JSON line with all figures")
    p.add_argument("--dry-run", action="store_true", help="build one batch, print its shape, exit")
    p.add_argument("--seed", type=int, default=1, help="seed of the payload template pool")
    p.add_argument("--startup-timeout", type=float, default=30.0, help="seconds to wait for health")
    p.add_argument(
        "--verify-timeout", type=float, default=30.0, help="seconds to wait for traces to show up"
    )
    p.add_argument("--url", default=None, help="use a running server instead of starting one")
    p.add_argument("--public-key", default=PUBLIC_KEY, help="with --url")
    p.add_argument("--secret-key", default=SECRET_KEY, help="with --url")
    p.add_argument("--server-pid", type=int, default=None, help="with --url: pid for RSS/CPU")
    args = p.parse_args(argv)
    if args.traces_per_batch < 1 or args.clients < 1:
        p.error("--traces-per-batch and --clients must be at least 1")
    if args.events is not None and args.events < 1:
        p.error("--events must be at least 1")
    return args


def _event_loop_runner() -> tuple[Any, str]:
    try:
        import uvloop

        return uvloop.run, "uvloop"
    except ImportError:
        return asyncio.run, "asyncio"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        return dry_run(args)

    machine = machine_facts()
    runner, loop_name = _event_loop_runner()
    print_header(args, machine, loop_name)

    server = Server(args.url.rstrip("/")) if args.url else start_server(args)
    if args.url:
        server_pid = args.server_pid
        public_key, secret_key = args.public_key, args.secret_key
    else:
        server_pid = server.pid
        public_key, secret_key = PUBLIC_KEY, SECRET_KEY
    auth = "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
    exit_code = 0
    try:
        try:
            wait_ready(server, args.startup_timeout)
        except RuntimeError as exc:
            print(f"\nserver did not come up: {exc}")
            tail = server.log_tail()
            if tail:
                print("--- server log (tail) ---\n" + tail)
            return 1
        where = f"pid {server_pid}" if server_pid else "pid unknown"
        print(f"server  : {server.base_url} ({where}), healthy after {server.ready_s:.2f} s")
        sys.stdout.flush()
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
    except KeyboardInterrupt:
        print("\ninterrupted")
        exit_code = 130
    finally:
        if not args.url:
            how = stop_server(server)
            print(f"server {how}; temp dir removed")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
