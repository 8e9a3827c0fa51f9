"""Throughput benchmark of OTLP/HTTP trace ingestion (``POST /api/public/otel/v1/traces``).

Starts a fresh tracehouse server in a subprocess (its own temporary data directory and a
bench project with the keys ``pk-lf-bench`` / ``sk-lf-bench``), drives it with concurrent clients
posting binary protobuf ``ExportTraceServiceRequest`` bodies, and prints figures. It never
asserts anything.

Each trace has ten spans, as an instrumented RAG request exports them: from the Langfuse SDK
scope a root span with trace attributes (name, user, session, tags, metadata), generations with
``langfuse.observation.type=generation``, model, parameters and usage, a retrieval span, an event
and a guardrail; from an OpenAI instrumentation scope ``gen_ai.*`` chat/embedding/tool spans
with model and token usage. Inputs and outputs are ~1 KB each. Every request carries fresh trace
and span ids and times around "now".

Run from the repository root::

    .venv/bin/python bench/ingest_otlp.py                         # 8 clients, 20 s, SQLite
    .venv/bin/python bench/ingest_otlp.py --clients 4 --traces-per-request 10 --duration 60
    .venv/bin/python bench/ingest_otlp.py --spans 200000 --json
    .venv/bin/python bench/ingest_otlp.py --gzip                  # gzip every request body
    .venv/bin/python bench/ingest_otlp.py --database-url postgresql+psycopg://u:p@host/db
    .venv/bin/python bench/ingest_otlp.py --rates 6000,9000,12000  # p50/p99 by offered load
    .venv/bin/python bench/ingest_otlp.py --dry-run               # no server: one body's shape
    .venv/bin/python bench/ingest_otlp.py --url http://localhost:3000 \\
        --public-key pk-lf-... --secret-key sk-lf-...             # an already running server

Figures: spans/s accepted (spans sent minus the ``partial_success.rejected_spans`` of the reply),
request latency p50/p95/p99 (and p50/p99 by 5 s of the window: they rise as the store grows),
request count, server RSS (process + children, sampled every 0.5 s:
idle, peak, final), server and client CPU time over the measured window, read-after-write time
(from the reply of a request until its last trace is readable through
``GET /api/public/traces/{id}`` with all ten observations: probed about once a second under load,
and once for the very last reply of the run), and a data check (``meta.totalItems`` of
``GET /api/public/traces?limit=1`` against the traces sent). The first ``--warmup`` seconds
(default 2) are excluded from the figures.

The client stays a single process and cheap: a pool of request bodies is serialised once with
placeholder ids and times; a request only joins the fixed byte chunks with fresh ids (random
bytes) and fixed64 times, so no protobuf work happens while the load runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import json
import os
import random
import shutil
import struct
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _common import (
    LoadConnection,
    LoadConnectionError,
    Plan,
    ResourceMonitor,
    Server,
    Tally,
    add_server_args,
    count_traces,
    event_loop_runner,
    fmt,
    format_latency_slices,
    latency_by_slice,
    latency_figures,
    machine_facts,
    positive_numbers,
    print_errors,
    print_latency_and_resources,
    print_machine,
    prose,
    rnd,
    run_against_server,
    store_label,
    wait_for_traces,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

OTLP_PATH = "/api/public/otel/v1/traces"
SPANS_PER_TRACE = 10
TEMPLATE_POOL_SIZE = 16
# Reply times are also given by this many seconds of the measured window.
LATENCY_SLICE_S = 5.0
# A --rates sweep: a load counts as kept up when this share of it was accepted in the window,
# and its summary names the highest load kept up with a p99 under this many ms (issue 6).
SWEEP_KEPT_UP = 0.97
SWEEP_P99_MS = 100.0
PROBE_EVERY_S = 1.0
RAW_INSERT_BATCH = 5_000  # rows per transaction of the raw SQLite insert
RAW_INSERT_MAX_S = 120.0  # the raw insert stops here even short of the run's row count

# --------------------------------------------------------------------------------------------
# Payload generation
# --------------------------------------------------------------------------------------------


def _value(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            _value(target.array_value.values.add(), item)
    else:
        target.string_value = str(value)


def _attributes(attrs: dict[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in attrs.items():
        kv = KeyValue(key=key)
        _value(kv.value, value)
        out.append(kv)
    return out


@dataclass(frozen=True)
class SpanShape:
    """One span of the trace template: who its parent is, when it runs, what it carries."""

    index: int
    parent: int | None
    scope: str  # "langfuse" or "genai"
    name: str
    start_ms: int
    end_ms: int
    attributes: dict[str, Any]
    error: str | None = None


def trace_shapes(rng: random.Random, index: int) -> list[SpanShape]:
    """The ten spans of one trace (content drawn from ``rng``), root first."""
    question, answer = prose(rng, 1000), prose(rng, 1000)
    system, user_msg, rewrite = prose(rng, 300), prose(rng, 700), prose(rng, 1000)
    docs = [{"id": f"doc-{rng.randrange(10**6)}", "text": prose(rng, 180)} for _ in range(5)]
    tool_result = prose(rng, 1000)
    in1, out1 = rng.randrange(200, 1200), rng.randrange(50, 600)
    in2, out2 = rng.randrange(400, 2000), rng.randrange(50, 800)
    chat_in = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": system}]},
            {"role": "user", "parts": [{"type": "text", "content": user_msg}]},
        ]
    )
    chat_out = json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": answer}],
                "finish_reason": "stop",
            }
        ]
    )
    lf = "langfuse.observation."
    return [
        SpanShape(
            0, None, "langfuse", "handle-request", 0, 3000,
            {
                "langfuse.trace.name": rng.choice(["chat-turn", "rag-query", "support-agent"]),
                "user.id": f"user-{rng.randrange(1000):04d}",
                "session.id": f"session-{index:03d}-{rng.randrange(10**6):06d}",
                "langfuse.trace.tags": rng.sample(["bench", "prod", "beta", "rag", "eu"], 3),
                "langfuse.trace.metadata.region": rng.choice(["eu-west-1", "us-east-1"]),
                "langfuse.trace.metadata.app_version": f"1.{rng.randrange(20)}.0",
                f"{lf}type": "span",
                f"{lf}input": json.dumps({"question": question}),
                f"{lf}output": json.dumps({"answer": answer}),
            },
        ),
        SpanShape(
            1, 0, "langfuse", "rewrite-query", 20, 700,
            {
                f"{lf}type": "generation",
                f"{lf}model.name": "gpt-4o",
                f"{lf}model.parameters": json.dumps({"temperature": 0.2, "max_tokens": 256}),
                f"{lf}usage_details": json.dumps({"input": in1, "output": out1}),
                f"{lf}input": json.dumps(
                    [{"role": "system", "content": system}, {"role": "user", "content": user_msg}]
                ),
                f"{lf}output": json.dumps({"role": "assistant", "content": rewrite}),
                f"{lf}metadata.attempt": 1,
            },
        ),
        SpanShape(
            2, 0, "langfuse", "retrieve-documents", 710, 1200,
            {
                f"{lf}type": "retriever",
                f"{lf}input": json.dumps({"query": rewrite[:200], "top_k": 5}),
                f"{lf}output": json.dumps({"documents": docs}),
                f"{lf}metadata.index": "kb-main",
            },
        ),
        SpanShape(
            3, 2, "langfuse", "cache-miss", 715, 715,
            {f"{lf}type": "event", f"{lf}level": "DEBUG", f"{lf}input": f'{{"key": "kb:{index}"}}'},
        ),
        SpanShape(
            4, 0, "langfuse", "answer", 1210, 2800,
            {
                f"{lf}type": "generation",
                f"{lf}model.name": "gpt-4o",
                f"{lf}model.parameters": json.dumps({"temperature": 0.7, "max_tokens": 1024}),
                f"{lf}usage_details": json.dumps({"input": in2, "output": out2}),
                f"{lf}input": json.dumps({"question": question[:300], "documents": docs[:3]}),
                f"{lf}output": json.dumps({"role": "assistant", "content": answer}),
            },
        ),
        SpanShape(
            5, 0, "langfuse", "guardrail-check", 2810, 2990,
            {
                f"{lf}type": "guardrail",
                f"{lf}input": json.dumps({"text": answer[:500]}),
                f"{lf}output": json.dumps({"passed": True, "checks": ["pii", "toxicity"]}),
            },
        ),
        SpanShape(
            6, 4, "genai", "chat gpt-4o", 1220, 2790,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.request.temperature": 0.7,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.response.id": f"chatcmpl-{rng.randrange(10**12)}",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": in2,
                "gen_ai.usage.output_tokens": out2,
                "gen_ai.input.messages": chat_in,
                "gen_ai.output.messages": chat_out,
                "server.address": "api.openai.com",
            },
        ),
        SpanShape(
            7, 2, "genai", "embeddings text-embedding-3-small", 720, 800,
            {
                "gen_ai.operation.name": "embeddings",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": rng.randrange(20, 80),
                "server.address": "api.openai.com",
            },
        ),
        SpanShape(
            8, 2, "genai", "execute_tool search_kb", 810, 1190,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search_kb",
                "gen_ai.tool.call.id": f"call_{rng.randrange(10**9)}",
                "gen_ai.tool.call.arguments": json.dumps({"query": rewrite[:300]}),
                "gen_ai.tool.call.result": json.dumps({"hits": tool_result}),
            },
        ),
        SpanShape(
            9, 5, "genai", "chat gpt-4o-mini", 2820, 2980,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.temperature": 0.0,
                "gen_ai.usage.input_tokens": rng.randrange(100, 400),
                "gen_ai.usage.output_tokens": rng.randrange(1, 20),
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": answer[:600]}]}]
                ),
                "gen_ai.output.messages": '[{"role":"assistant","parts":'
                '[{"type":"text","content":"{\\"flagged\\": false}"}]}]',
            },
            error="content filter timed out" if index % 7 == 0 else None,
        ),
    ]  # fmt: skip


RESOURCE = {
    "service.name": "rag-api",
    "service.version": "2.4.1",
    "deployment.environment.name": "production",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.38.0",
    "host.name": "bench-host-1",
}
SCOPES = {
    "langfuse": ("langfuse-sdk", "3.6.1", {"public_key": "pk-lf-bench"}),
    "genai": ("opentelemetry.instrumentation.openai", "0.44.0", {}),
}


class RequestTemplate:
    """A serialised request whose ids and times are placeholders, as byte chunks and slots.

    ``chunks[i]`` is followed by the value of ``slots[i]`` (the last chunk by nothing). A slot is
    ``("trace", t)``, ``("span", t, s)`` or ``("time", t, s, 0|1)`` (start/end of span ``s`` of
    trace ``t``); ``offsets_ns`` gives each time slot's distance from the end of the request's
    latest span.
    """

    def __init__(self, rng: random.Random, traces: list[list[SpanShape]]) -> None:
        placeholders: dict[bytes, tuple[Any, ...]] = {}

        def placeholder(size: int, slot: tuple[Any, ...]) -> bytes:
            while True:
                value = rng.randbytes(size)
                if value not in placeholders and b"\x00" not in value:
                    placeholders[value] = slot
                    return value

        request = ExportTraceServiceRequest()
        resource_spans: ResourceSpans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_attributes(RESOURCE))
        scopes = {}
        for key, (name, version, attrs) in SCOPES.items():
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = name
            scope_spans.scope.version = version
            scope_spans.scope.attributes.extend(_attributes(attrs))
            scopes[key] = scope_spans
        self.expected: collections.Counter[bytes] = collections.Counter()
        self.offsets_ns: dict[tuple[Any, ...], int] = {}
        for t, shapes in enumerate(traces):
            trace_id = placeholder(16, ("trace", t))
            span_ids = [placeholder(8, ("span", t, s.index)) for s in shapes]
            # Children end first: exporters send spans in the order they end.
            for shape in sorted(shapes, key=lambda s: s.end_ms):
                start = placeholder(8, ("time", t, shape.index, 0))
                end = placeholder(8, ("time", t, shape.index, 1))
                self.offsets_ns[placeholders[start]] = (shape.start_ms - 3000) * 1_000_000
                self.offsets_ns[placeholders[end]] = (shape.end_ms - 3000) * 1_000_000
                span = scopes[shape.scope].spans.add(
                    trace_id=trace_id,
                    span_id=span_ids[shape.index],
                    name=shape.name,
                    kind=Span.SPAN_KIND_INTERNAL
                    if shape.scope == "langfuse"
                    else Span.SPAN_KIND_CLIENT,
                    attributes=_attributes(shape.attributes),
                )
                # fixed64 fields: 8 bytes little-endian, so placeholders can be swapped in place.
                span.start_time_unix_nano = struct.unpack("<Q", start)[0]
                span.end_time_unix_nano = struct.unpack("<Q", end)[0]
                if shape.parent is not None:
                    span.parent_span_id = span_ids[shape.parent]
                    self.expected[span_ids[shape.parent]] += 1
                if shape.error:
                    span.status.code = Status.STATUS_CODE_ERROR
                    span.status.message = shape.error
                self.expected.update((trace_id, span_ids[shape.index], start, end))
        body = request.SerializeToString()
        found: list[tuple[int, int, tuple[Any, ...]]] = []
        for value, slot in placeholders.items():
            at = body.find(value)
            while at != -1:
                found.append((at, len(value), slot))
                at = body.find(value, at + 1)
        counts = collections.Counter(slot for _, _, slot in found)
        wanted = {placeholders[v]: n for v, n in self.expected.items()}
        if counts != wanted:
            raise ValueError("placeholder bytes collided with the payload; change --seed")
        found.sort()
        self.chunks: list[bytes] = []
        self.slots: list[tuple[Any, ...]] = []
        pos = 0
        for at, size, slot in found:
            if at < pos:
                raise ValueError("overlapping placeholders; change --seed")
            self.chunks.append(body[pos:at])
            self.slots.append(slot)
            pos = at + size
        self.chunks.append(body[pos:])
        self.traces = len(traces)
        self.spans = sum(len(shapes) for shapes in traces)
        self.size = len(body)

    def render(self, now_ns: int) -> tuple[bytes, list[str]]:
        """A request body with fresh ids and times ending at ``now_ns``, and its trace ids."""
        trace_ids = [os.urandom(16) for _ in range(self.traces)]
        span_ids: dict[tuple[Any, ...], bytes] = {}
        pack = struct.Struct("<Q").pack
        parts: list[bytes] = []
        for chunk, slot in zip(self.chunks, self.slots, strict=False):
            parts.append(chunk)
            kind = slot[0]
            if kind == "trace":
                parts.append(trace_ids[slot[1]])
            elif kind == "span":
                value = span_ids.get(slot)
                if value is None:
                    value = span_ids[slot] = os.urandom(8)
                parts.append(value)
            else:
                parts.append(pack(now_ns + self.offsets_ns[slot]))
        parts.append(self.chunks[-1])
        return b"".join(parts), [t.hex() for t in trace_ids]


class BodyFactory:
    """Request bodies of ``traces_per_request`` traces each, round-robin over a template pool."""

    def __init__(self, traces_per_request: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.pool = []
        for i in range(TEMPLATE_POOL_SIZE):
            traces = [
                trace_shapes(rng, i * traces_per_request + t) for t in range(traces_per_request)
            ]
            self.pool.append(RequestTemplate(rng, traces))
        self.traces_per_request = traces_per_request
        self.spans_per_request = traces_per_request * SPANS_PER_TRACE
        self._next = 0

    def build(self) -> tuple[bytes, list[str]]:
        template = self.pool[self._next % len(self.pool)]
        self._next += 1
        return template.render(time.time_ns())


def dry_run(args: argparse.Namespace) -> int:
    factory = BodyFactory(args.traces_per_request, seed=args.seed)
    body, trace_ids = factory.build()
    request = ExportTraceServiceRequest.FromString(body)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    span_ids = [s.span_id for s in spans]
    n = 500
    t = time.perf_counter()
    for _ in range(n):
        factory.build()
    per_request_ms = (time.perf_counter() - t) / n * 1000
    mapped = _mapped_types(body)
    print("dry run: one request body (nothing is sent)")
    print(f"  traces              {len(trace_ids)} ({len({s.trace_id for s in spans})} distinct)")
    print(f"  spans               {len(spans)}")
    print(f"  body size           {len(body):,} bytes ({len(body) / len(spans):,.0f} B/span)")
    print(f"  gzip size           {len(gzip.compress(body, 1)):,} bytes (level 1)")
    print(f"  unique span ids     {len(set(span_ids)) == len(span_ids)}")
    if mapped:
        print("  mapped by tracehouse's decoder (observation types)")
        for kind, count in sorted(mapped.items()):
            print(f"    {kind:<19} {count}")
    print(f"  build cost          {per_request_ms:.3f} ms/request (client side, {n} runs)")
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": True,
                    "traces": len(trace_ids),
                    "spans": len(spans),
                    "observation_types": mapped,
                    "body_bytes": len(body),
                    "build_ms_per_request": round(per_request_ms, 4),
                }
            )
        )
    return 0


def _mapped_types(body: bytes) -> dict[str, int]:
    """Observation types the server's decoder gives the body (empty if it cannot be imported)."""
    try:
        from tracehouse.ingest.otlp import decode_protobuf
    except Exception:  # the bench must run without the package on the path
        return {}
    decoded = decode_protobuf(body)
    kinds = collections.Counter(e.fields["type"] for e in decoded.events if e.kind == "observation")
    kinds["(trace events)"] = sum(e.kind == "trace" for e in decoded.events)
    kinds["(rejected spans)"] = len(decoded.rejected)
    return dict(kinds)


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class Totals:
    """Across warm-up and measured phase: what the server should hold afterwards."""

    traces_sent: int = 0
    traces_accepted: int = 0  # traces of requests answered 200 with no rejected span
    last_reply: tuple[float, str] | None = None  # (reply time, a trace id of that request)


@dataclass
class ReadAfterWrite:
    under_load_ms: list[float] = field(default_factory=list)
    last_ms: float | None = None
    failures: int = 0


async def client_loop(
    base_url: str,
    auth: str,
    factory: BodyFactory,
    plan: Plan,
    measured: Tally,
    warm: Tally,
    totals: Totals,
    compress: bool,
    path: str = OTLP_PATH,
    schedule: tuple[float, float] | None = None,
) -> None:
    """Posts bodies until ``plan`` says stop. ``auth`` may be empty (a server without auth);
    ``path`` lets other benchmarks point the same loop at another OTLP endpoint.

    Without ``schedule`` each request goes out as soon as the previous one is answered (the
    server sets the pace). With ``schedule = (first, interval)`` the client sends at fixed
    times instead (``--rate``), and a request's latency counts from the time it was due, so a
    reply that holds up the next request is charged to that one as well."""
    headers = {"Content-Type": "application/x-protobuf"}
    if auth:
        headers["Authorization"] = auth
    if compress:
        headers["Content-Encoding"] = "gzip"
    conn = LoadConnection(base_url, headers)
    n_spans = factory.spans_per_request
    due = schedule[0] if schedule else 0.0
    try:
        while True:
            if schedule:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            start = time.perf_counter()
            if not plan.may_send(start, n_spans):
                return
            body, trace_ids = factory.build()
            if compress:
                body = gzip.compress(body, 1)
            tally = measured if start >= plan.warm_until else warm
            totals.traces_sent += len(trace_ids)
            t = time.perf_counter()
            try:
                status, reply_headers, payload = await conn.post(path, body)
            except LoadConnectionError as exc:
                done = time.perf_counter()
                tally.requests += 1
                tally.sent += n_spans
                tally.rejected += n_spans
                tally.statuses["transport error"] += 1
                tally.errors[f"transport {exc}"[:200]] += 1
                tally.last_done = done
                if schedule:
                    due += schedule[1]
                await asyncio.sleep(0.05)
                continue
            done = time.perf_counter()
            tally.requests += 1
            tally.sent += n_spans
            # With a schedule, from when the request was due: a late start is waiting too.
            began = min(due, t) if schedule else t
            tally.latencies_ms.append((done - began) * 1000)
            tally.started.append(began)
            if schedule:
                due += schedule[1]
            tally.statuses[str(status)] += 1
            tally.last_done = done
            if status == 200:
                rejected = 0
                if payload:
                    reply = ExportTraceServiceResponse.FromString(payload)
                    rejected = reply.partial_success.rejected_spans
                    if rejected:
                        tally.errors[reply.partial_success.error_message[:160]] += 1
                tally.accepted += n_spans - rejected
                tally.rejected += rejected
                if not rejected:
                    totals.traces_accepted += len(trace_ids)
                    if totals.last_reply is None or done > totals.last_reply[0]:
                        totals.last_reply = (done, trace_ids[-1])
            else:
                tally.rejected += n_spans
                tally.errors[f"HTTP {status}: {payload[:160].decode(errors='replace')}"] += 1
                if status in (429, 503):
                    await asyncio.sleep(float(reply_headers.get("retry-after", "1")))
    finally:
        await conn.close()


async def readable_after(
    client: httpx.AsyncClient, trace_id: str, replied_at: float, timeout_s: float
) -> float | None:
    """Milliseconds from ``replied_at`` until the trace reads back with all its observations."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            r = await client.get(f"/api/public/traces/{trace_id}")
            if r.status_code == 200 and len(r.json()["observations"]) >= SPANS_PER_TRACE:
                return (time.perf_counter() - replied_at) * 1000
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        await asyncio.sleep(0.005)
    return None


async def probe_loop(
    client: httpx.AsyncClient,
    plan: Plan,
    totals: Totals,
    result: ReadAfterWrite,
    timeout_s: float,
) -> None:
    """About once a second in the measured window: how soon is the latest reply readable?"""
    await asyncio.sleep(max(0.0, plan.warm_until - time.perf_counter()))
    while plan.stop_at is None or time.perf_counter() < plan.stop_at - PROBE_EVERY_S:
        await asyncio.sleep(PROBE_EVERY_S)
        if totals.last_reply is None:
            continue
        replied_at, trace_id = totals.last_reply
        ms = await readable_after(client, trace_id, replied_at, timeout_s)
        if ms is None:
            result.failures += 1
        else:
            result.under_load_ms.append(ms)


async def run_load(
    args: argparse.Namespace, base_url: str, auth: str, server_pid: int | None
) -> dict[str, Any]:
    factory = BodyFactory(args.traces_per_request, seed=args.seed)
    check = httpx.AsyncClient(base_url=base_url, headers={"Authorization": auth}, timeout=30.0)
    traces_before = await count_traces(check)
    monitor = ResourceMonitor(server_pid)
    await monitor.start()

    t0 = time.perf_counter()
    plan = Plan(
        warm_until=t0 + args.warmup,
        stop_at=None if args.spans else t0 + args.warmup + args.duration,
        budget=args.spans,
    )
    measured, warm, totals = Tally(), Tally(), Totals()
    raw = ReadAfterWrite()
    marker = asyncio.create_task(monitor.mark_after(args.warmup))
    probe = asyncio.create_task(probe_loop(check, plan, totals, raw, args.verify_timeout))
    schedules: list[tuple[float, float] | None] = [None] * args.clients
    if args.rate:
        # Requests of the whole run evenly spaced, dealt round-robin to the clients.
        interval = args.clients * factory.spans_per_request / args.rate
        schedules = [(t0 + i * interval / args.clients, interval) for i in range(args.clients)]
    clients = [
        client_loop(
            base_url, auth, factory, plan, measured, warm, totals, args.gzip, schedule=schedule
        )
        for schedule in schedules
    ]
    await asyncio.gather(*clients)
    marker.cancel()  # a run shorter than the warm-up measures from its end
    probe.cancel()
    elapsed = max(measured.last_done - plan.warm_until, 1e-9)
    cpu = monitor.cpu(elapsed)

    if totals.last_reply is not None:
        replied_at, trace_id = totals.last_reply
        raw.last_ms = await readable_after(check, trace_id, replied_at, args.verify_timeout)
    expected = totals.traces_accepted
    data_check = await wait_for_traces(check, traces_before, expected, args.verify_timeout)
    stored_at = time.perf_counter()
    await check.aclose()
    rss = await monitor.stop()

    under_load = sorted(raw.under_load_ms)
    return {
        "measured_s": round(elapsed, 3),
        "requests": measured.requests,
        "spans_sent": measured.sent,
        "spans_accepted": measured.accepted,
        "spans_rejected": measured.rejected,
        "spans_per_s": round(measured.accepted / elapsed, 1),
        # Counted when stored and readable: every accepted span (warm-up included) over the
        # time from the first request until the data check saw all of them through the API.
        "stored_spans_per_s": round((warm.accepted + measured.accepted) / (stored_at - t0), 1)
        if data_check["match"]
        else None,
        "traces_per_s": round(measured.accepted / SPANS_PER_TRACE / elapsed, 1),
        "requests_per_s": round(measured.requests / elapsed, 2),
        "latency_ms": latency_figures(measured.latencies_ms),
        "latency_ms_by_slice": latency_by_slice(
            measured.started, measured.latencies_ms, plan.warm_until, LATENCY_SLICE_S
        ),
        "http_statuses": dict(measured.statuses),
        "errors": dict(measured.errors.most_common(10)),
        "warmup": {
            "requests": warm.requests,
            "spans_accepted": warm.accepted,
            "spans_rejected": warm.rejected,
            "errors": dict(warm.errors.most_common(5)),
        },
        "read_after_write_ms": {
            "last_reply": rnd(raw.last_ms),
            "under_load_median": rnd(under_load[len(under_load) // 2] if under_load else None),
            "under_load_max": rnd(under_load[-1] if under_load else None),
            "under_load_probes": len(under_load),
            "probe_failures": raw.failures,
        },
        "server_rss_mib": rss,
        "cpu_s": cpu,
        # The cost of a span rather than a rate (runs at different loads compare): server CPU
        # over the measured window per span accepted in it (a span's work is done within ~1 s).
        "server_cpu_us_per_span": round(1e6 * cpu["server"] / measured.accepted, 1)
        if cpu["server"] is not None and measured.accepted
        else None,
        "data_check": {
            "traces_sent": totals.traces_sent,
            "traces_accepted": expected,
            **data_check,
        },
    }


# --------------------------------------------------------------------------------------------
# The machine's raw limit
# --------------------------------------------------------------------------------------------


def raw_limits(factory: BodyFactory, seconds: float, rows: int) -> dict[str, Any]:
    """What this machine does at best, single-threaded, with the same data and no server.

    * protobuf decode: ``ExportTraceServiceRequest.FromString`` of the same request bodies for
      ``seconds``, touching every span (the floor under any OTLP decoder in Python);
    * SQLite insert: as many spans as the run stored (``rows``), written as the rows tracehouse
      stores for them (``_RawRows``: every column, encoded as the server encodes it) with a plain
      ``INSERT`` into a store made by tracehouse's own migrations (the same tables, indexes and
      settings), 5,000 spans with their traces and sessions per transaction, SQLite's own
      checkpoints; no decoding, merging, pricing, lookups or upserts, and only the inserts are
      timed. Every row has fresh ids and times, drawn as the run's own are: a random 64-bit span
      id per row, a random 128-bit trace id per trace, times rising with the rows, so the
      indexes on ids take inserts all over and those on times at their end, as in the run. The
      rate is over all the rows, into tables that grow from empty to the run's size, as the
      run's own do; the rate of the first ``seconds`` alone (smaller tables) is given beside it.
    """
    import sqlite3
    import tempfile

    bodies = [factory.build()[0] for _ in range(len(factory.pool))]
    spans_per_body = factory.spans_per_request
    n = 0
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        _ = span.span_id, span.attributes
            n += spans_per_body
    decode_rate = n / (time.process_time() - t0)

    folder = tempfile.mkdtemp(prefix="tracehouse-raw-")
    try:
        raw = _RawRows(bodies, folder)
        conn = sqlite3.connect(raw.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-16384"):
            conn.execute(f"PRAGMA {pragma}")
        target = max(rows, RAW_INSERT_BATCH)
        inserted, early, timed = 0, None, 0.0
        started = time.perf_counter()
        while inserted < target and time.perf_counter() - started < RAW_INSERT_MAX_S:
            statements = raw.transaction(RAW_INSERT_BATCH)
            t = time.perf_counter()
            conn.execute("BEGIN")
            for sql, params in statements:
                conn.executemany(sql, params)
            conn.execute("COMMIT")
            timed += time.perf_counter() - t
            inserted += len(statements[0][1])
            if early is None and timed >= seconds:
                early = inserted / timed
        conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "protobuf_decode_spans_per_s": round(decode_rate),
        "sqlite_insert_rows_per_s": round(inserted / timed),
        "sqlite_insert_rows": inserted,
        "sqlite_insert_capped": inserted < target,  # stopped at RAW_INSERT_MAX_S
        "sqlite_insert_first_s": seconds,
        "sqlite_insert_first_s_rows_per_s": round(early if early else inserted / timed),
        "row_bytes": raw.row_bytes,
    }


class _RawRows:
    """The rows tracehouse stores for the spans of ``bodies``, as templates for the raw insert.

    The bodies are decoded and prepared by tracehouse's own code (built-in model prices, so cost
    columns are filled as in the run), once; ``transaction`` then gives fresh copies of those
    rows: new span and trace ids (parents follow their spans), start times and trace timestamps
    rising 66 µs per span from now, the rest as prepared. ``path``: an empty store made by
    tracehouse's migrations, where they go.
    """

    def __init__(self, bodies: list[bytes], folder: str) -> None:
        from pathlib import Path

        root = str(Path(__file__).resolve().parent.parent)  # this checkout's tracehouse
        if root not in sys.path:
            sys.path.insert(0, root)
        # With the writer's own encoders (private names): rows encoded as the server's are.
        from tracehouse.config import Settings
        from tracehouse.ingest.otlp import decode_protobuf
        from tracehouse.pricing.builtin import builtin_models
        from tracehouse.pricing.registry import ModelRegistry
        from tracehouse.store.db import make_engine, migrate
        from tracehouse.store.schema import observations, sessions, traces
        from tracehouse.store.writes import (
            _sqlite_utc_text,
            _upsert_sql_for,
            prepare_events,
            session_rows,
        )

        engine = make_engine(Settings(data_dir=Path(folder)))
        migrate(engine)
        self.path = engine.url.database
        dialect = engine.dialect
        engine.dispose()
        models = ModelRegistry(builtin_models(), lambda _project: [])
        self.time_text = _sqlite_utc_text
        # Observations, traces, sessions: the writer's encoding of each, and a plain insert.
        tables = ((observations, "INSERT"), (traces, "INSERT"), (sessions, "INSERT OR IGNORE"))
        upserts = [_upsert_sql_for(dialect, table, table is not sessions) for table, _ in tables]
        self.names = [upsert.names for upsert in upserts]
        self.sql = [
            f"{verb} INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            for (table, verb), names in zip(tables, self.names, strict=True)
        ]
        # Per body: its observation, trace and session rows as parameter lists.
        self.templates: list[tuple[list[list[Any]], ...]] = []
        for body in bodies:
            events = [("bench", e) for e in decode_protobuf(body).events]
            prepared = prepare_events(events, models, dialect)
            trace_rows = list(prepared.rows["trace"].values())
            rows = (
                list(prepared.rows["observation"].values()),
                trace_rows,
                session_rows(trace_rows, prepared.now),
            )
            self.templates.append(
                tuple(
                    [upsert.params(row) for row in table_rows]
                    for upsert, table_rows in zip(upserts, rows, strict=True)
                )
            )
        obs, trc = self.names[0], self.names[1]
        self.obs_at = {
            k: obs.index(k) for k in ("id", "trace_id", "parent_observation_id", "start_time")
        }
        self.trace_at = {k: trc.index(k) for k in ("id", "timestamp")}
        first = self.templates[0][0]
        self.row_bytes = round(
            sum(len(v) for row in first for v in row if isinstance(v, str | bytes)) / len(first)
        )
        self.rng = random.Random(7)
        self.next_body = 0
        self.start = datetime.now(UTC)
        self.spans = 0

    def transaction(self, spans: int) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Statements and parameters of a transaction of at least ``spans`` new spans."""
        out: list[list[tuple[Any, ...]]] = [[], [], []]
        at, trace_at = self.obs_at, self.trace_at
        while len(out[0]) < spans:
            obs_rows, trace_rows, session_rows = self.templates[
                self.next_body % len(self.templates)
            ]
            self.next_body += 1
            new_ids: dict[Any, str] = {}
            for row in obs_rows:
                new_ids[row[at["id"]]] = f"{self.rng.getrandbits(64):016x}"
            for row in trace_rows:
                new_ids[row[trace_at["id"]]] = f"{self.rng.getrandbits(128):032x}"
            for row in trace_rows:
                fresh = list(row)
                fresh[trace_at["id"]] = new_ids[row[trace_at["id"]]]
                fresh[trace_at["timestamp"]] = self._now()
                out[1].append(tuple(fresh))
            for row in obs_rows:
                fresh = list(row)
                for key in ("id", "trace_id", "parent_observation_id"):
                    fresh[at[key]] = new_ids.get(row[at[key]], row[at[key]])
                fresh[at["start_time"]] = self._now()
                self.spans += 1
                out[0].append(tuple(fresh))
            out[2].extend(tuple(row) for row in session_rows)
        return list(zip(self.sql, out, strict=True))

    def _now(self) -> str:
        return self.time_text(self.start + timedelta(microseconds=66 * self.spans))


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def print_header(args: argparse.Namespace, machine: dict[str, Any], loop_name: str) -> None:
    spans = args.traces_per_request * SPANS_PER_TRACE
    end = f"{args.spans:,} spans" if args.spans else f"{args.duration:g} s"
    pace = f" at a fixed {args.rate:,.0f} spans/s" if args.rate else ""
    print("tracehouse OTLP ingestion benchmark (POST /api/public/otel/v1/traces, protobuf)")
    print_machine(machine)
    print(
        f"params  : {args.clients} clients x {args.traces_per_request} traces/request "
        f"({spans} spans/request{', gzip' if args.gzip else ''}){pace}, {end} after "
        f"{args.warmup:g} s warm-up, store: {store_label(args)}, client loop: {loop_name}"
    )
    sys.stdout.flush()


def load_sweep(offered: list[float], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per offered load of a ``--rates`` sweep: whether the server kept up (accepted at
    least ``SWEEP_KEPT_UP`` of the load in the window) and the reply times at that load."""
    if len(offered) != len(runs):
        raise ValueError(f"{len(offered)} loads but {len(runs)} runs")
    rows = []
    for rate, fig in zip(offered, runs, strict=True):
        rows.append(
            {
                "offered_spans_per_s": rate,
                "accepted_spans_per_s": fig["spans_per_s"],
                "kept_up": fig["spans_per_s"] >= SWEEP_KEPT_UP * rate,
                "p50_ms": fig["latency_ms"]["p50"],
                "p99_ms": fig["latency_ms"]["p99"],
                # None where the server's pid is unknown (--url without --server-pid)
                "server_pct_of_core": fig["cpu_s"]["server_pct_of_core"],
                "server_cpu_us_per_span": fig.get("server_cpu_us_per_span"),
                "data_check_match": fig["data_check"]["match"],
            }
        )
    return rows


def highest_load_within(rows: list[dict[str, Any]], p99_ms: float) -> float | None:
    """The highest offered load that the server kept up with at a p99 under ``p99_ms``."""
    good = [
        r["offered_spans_per_s"]
        for r in rows
        if r["kept_up"] and r["p99_ms"] is not None and r["p99_ms"] < p99_ms
    ]
    return max(good) if good else None


def print_load_sweep(rows: list[dict[str, Any]], fresh: bool = True) -> None:
    where = "one fresh server per load" if fresh else "one after another against --url"
    print(f"reply times by offered load ({where})")
    print("  offered/s  accepted/s  kept up  p50 ms  p99 ms  CPU % core  µs/span  data")
    for r in rows:
        pct = r["server_pct_of_core"]
        verdict = {True: "match", False: "MISMATCH", None: "?"}[r["data_check_match"]]
        print(
            f"  {r['offered_spans_per_s']:>9,.0f}  {r['accepted_spans_per_s']:>10,.0f}  "
            f"{'yes' if r['kept_up'] else 'NO':>7}  {fmt(r['p50_ms']):>6}  {fmt(r['p99_ms']):>6}  "
            f"{(f'{pct:.0f}%' if pct is not None else 'n/a'):>10}  "
            f"{fmt(r['server_cpu_us_per_span']):>7}  {verdict}"
        )
    best = highest_load_within(rows, SWEEP_P99_MS)
    print(
        f"  highest load kept up with p99 < {SWEEP_P99_MS:g} ms: "
        + (f"{best:,.0f} spans/s" if best is not None else "none of these")
    )


def print_figures(fig: dict[str, Any]) -> None:
    dc = fig["data_check"]
    raw = fig["read_after_write_ms"]
    print()
    print("figures (measured window, warm-up excluded)")
    print(f"  window              {fig['measured_s']:.2f} s")
    print(f"  requests            {fig['requests']:,}  ({fig['requests_per_s']:.1f} /s)")
    print(f"  spans accepted      {fig['spans_accepted']:,}  ({fig['spans_per_s']:,.1f} /s)")
    stored = fig.get("stored_spans_per_s")
    print(
        "  stored + readable   "
        + (f"{stored:,.1f} spans/s" if stored else "n/a (data check did not match)")
        + " (first request -> all readable through the API, warm-up included)"
    )
    print(f"  traces accepted     {fig['spans_accepted'] // SPANS_PER_TRACE:,}  ", end="")
    print(f"({fig['traces_per_s']:,.1f} /s)")
    print(f"  spans rejected      {fig['spans_rejected']:,}")
    print_latency_and_resources(fig)
    if len(fig["latency_ms_by_slice"]) > 1:
        print(
            f"  latency over time   p50/p99 ms by {LATENCY_SLICE_S:g} s of the window: "
            + format_latency_slices(fig["latency_ms_by_slice"])
        )
    if fig.get("server_cpu_us_per_span") is not None:
        print(
            f"  server CPU per span {fig['server_cpu_us_per_span']:,.1f} µs "
            "(server CPU in the window / spans accepted in it)"
        )
    print(
        f"  read-after-write ms last reply {fmt(raw['last_reply'])}; under load median "
        f"{fmt(raw['under_load_median'])}, max {fmt(raw['under_load_max'])} "
        f"({raw['under_load_probes']} probes, {raw['probe_failures']} timed out)"
    )
    verdict = {True: "match", False: "MISMATCH", None: "unknown"}[dc["match"]]
    print(
        f"  data check          traces sent {dc['traces_sent']:,} (incl. warm-up), "
        f"accepted {dc['traces_accepted']:,}, "
        f"server totalItems {fmt(dc['server_total_items_after'], ',')} "
        f"(before {fmt(dc['server_total_items_before'], ',')}) -> {verdict} "
        f"after {dc['wait_s']:.2f} s"
    )
    stream = fig.get("stream_workers")
    if stream:
        print(
            f"  stream workers      {stream['processes']} process(es): CPU {stream['cpu_s']:.2f} s "
            f"in all, RSS {stream['rss_mib']:.1f} MiB at the end"
        )
    disk = fig.get("disk")
    if disk:
        print(
            f"  bytes on disk       {disk['bytes_per_span']:,.0f} per span "
            f"(store {disk['store_bytes'] / 2**20:,.1f} MiB after a checkpoint, "
            f"{disk['store_bytes_before_checkpoint'] / 2**20:,.1f} MiB with the WAL before it; "
            f"{disk['spans']:,} spans); "
            f"wire {disk['wire_bytes_per_span']:,.0f} per span (protobuf)"
        )
    limit = fig.get("raw_limit")
    if limit:
        rate = fig["spans_per_s"]
        print("raw limit of this machine (same data, one thread, no server)")
        print(
            f"  protobuf decode     {limit['protobuf_decode_spans_per_s']:,} spans/s  "
            f"-> ingest is {rate / limit['protobuf_decode_spans_per_s']:.1%} of it"
        )
        count = (
            f"stopped after {RAW_INSERT_MAX_S:g} s, short of the run's count"
            if limit["sqlite_insert_capped"]
            else "the run's count"
        )
        print(
            f"  SQLite insert       {limit['sqlite_insert_rows_per_s']:,} spans/s over "
            f"{limit['sqlite_insert_rows']:,} spans, {count} (tracehouse's rows for them: "
            f"observations of ~{limit['row_bytes']:,} B, their traces and sessions)  -> ingest is "
            f"{rate / limit['sqlite_insert_rows_per_s']:.1%} of it"
        )
        print(
            f"                      {limit['sqlite_insert_first_s_rows_per_s']:,} spans/s in its "
            f"first {limit['sqlite_insert_first_s']:g} s alone (a smaller table)  -> "
            f"{rate / limit['sqlite_insert_first_s_rows_per_s']:.1%}"
        )
    print_errors(fig["errors"] or fig["warmup"]["errors"])


def start_stream_workers(args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """``tracehouse worker`` processes for the scale-out profile, consuming once ready."""
    import subprocess
    import tempfile

    env = dict(os.environ, DATABASE_URL=args.database_url)
    workers = []
    for _ in range(args.stream_workers):
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracehouse", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        workers.append((proc, log))
    deadline = time.perf_counter() + 60
    for proc, log in workers:
        while True:
            log.seek(0)
            if b"consuming" in log.read():
                break
            if proc.poll() is not None or time.perf_counter() > deadline:
                log.seek(0)
                raise RuntimeError("worker did not start:\n" + log.read().decode(errors="replace"))
            time.sleep(0.1)
    return workers


def stop_stream_workers(workers: list[tuple[Any, Any]]) -> dict[str, Any]:
    """SIGTERM the workers (they finish their batch); their CPU time and peak RSS."""
    import signal

    import psutil

    cpu, rss = 0.0, 0
    for proc, _log in workers:
        try:
            p = psutil.Process(proc.pid)
            times = p.cpu_times()
            cpu += times.user + times.system
            rss += p.memory_info().rss
        except psutil.Error:
            pass
        proc.send_signal(signal.SIGTERM)
    for proc, _log in workers:
        proc.wait(30)
    return {"processes": len(workers), "cpu_s": round(cpu, 2), "rss_mib": round(rss / 2**20, 1)}


def disk_figures(server: Server, fig: dict[str, Any]) -> dict[str, Any] | None:
    """Size of the started server's SQLite store (database + WAL) per span it holds."""
    if server.workdir is None or not (server.workdir / "data").is_dir():
        return None
    folder = server.workdir / "data"
    import sqlite3

    def store_size() -> int:
        return sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith("tracehouse.db"))

    with_wal = store_size()
    # The write-ahead log holds up to 128 MiB between the server's checkpoints: fold it into the
    # database to measure what the data takes. A checkpoint refuses at once (busy) while the
    # server's own is running, so try until one has copied and emptied the whole log.
    conn = sqlite3.connect(folder / "tracehouse.db", timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:
            busy, log_frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if (busy == 0 and log_frames == copied) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        conn.close()
    size = store_size()
    spans = fig["data_check"]["traces_accepted"] * SPANS_PER_TRACE
    if not spans:
        return None
    factory = BodyFactory(1)
    wire = sum(t.size for t in factory.pool) / sum(t.spans for t in factory.pool)
    return {
        "store_bytes": size,
        "store_bytes_before_checkpoint": with_wal,
        "spans": spans,
        "bytes_per_span": size / spans,
        "wire_bytes_per_span": wire,
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark tracehouse's OTLP/HTTP trace ingestion. Prints figures; "
        "never asserts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--traces-per-request", type=int, default=5, help="traces per request (x10 spans)"
    )
    p.add_argument(
        "--clients", type=int, default=8, help="concurrent clients (one connection each)"
    )
    end = p.add_mutually_exclusive_group()
    end.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    end.add_argument(
        "--spans", type=int, default=None, help="measured spans to send (instead of --duration)"
    )
    p.add_argument("--gzip", action="store_true", help="gzip every request body (level 1)")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offered load in spans/s: requests go out at fixed times (spread over the "
        "clients) instead of each after the last reply, and latency counts from when a request "
        "was due; for the reply times at a given load rather than at the server's limit",
    )
    p.add_argument(
        "--rates",
        default=None,
        help="offered loads in spans/s, comma-separated (e.g. 6000,9000,12000,15000): one run at "
        "each fixed load against a fresh server, then a table of p50/p99 by load and the highest "
        f"load kept up with p99 under {SWEEP_P99_MS:g} ms",
    )
    p.add_argument("--dry-run", action="store_true", help="build one body, print its shape, exit")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes of the started server (serve --workers)",
    )
    p.add_argument(
        "--redis-url",
        default=None,
        help="scale-out profile: the server appends to a Redis Stream (needs --database-url)",
    )
    p.add_argument(
        "--stream-workers",
        type=int,
        default=1,
        help="with --redis-url: `tracehouse worker` processes started beside the server",
    )
    p.add_argument(
        "--raw-limit",
        type=float,
        default=3.0,
        help="seconds of protobuf decoding for the raw limit after the load; the raw SQLite "
        "insert stores as many rows as the run did and also reports its first this many seconds "
        "(0: skip both)",
    )
    add_server_args(p)
    args = p.parse_args(argv)
    if args.traces_per_request < 1 or args.clients < 1:
        p.error("--traces-per-request and --clients must be at least 1")
    if args.spans is not None and args.spans < 1:
        p.error("--spans must be at least 1")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    if args.rates is not None:
        if args.rate is not None:
            p.error("--rate and --rates cannot be combined")
        args.rates = positive_numbers(p, "--rates", args.rates)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        return dry_run(args)

    if args.workers > 1:
        os.environ["TRACEHOUSE_WORKERS"] = str(args.workers)  # read by the started server
    if args.redis_url:
        if not args.database_url:
            print("--redis-url needs --database-url (the scale-out profile runs on PostgreSQL)")
            return 2
        os.environ["REDIS_URL"] = args.redis_url
        os.environ["TRACEHOUSE_STREAM_NAME"] = f"tracehouse-bench:{os.getpid()}:{time.time_ns()}"
    machine = machine_facts()
    runner, loop_name = event_loop_runner()
    runs: list[dict[str, Any]] = []  # the figures of each run (one, or one per load of --rates)

    def measure(server: Server, auth: str, server_pid: int | None) -> int:
        workers = start_stream_workers(args) if args.redis_url and not args.url else []
        try:
            figures = runner(run_load(args, server.base_url, auth, server_pid))
            if workers:
                figures["stream_workers"] = stop_stream_workers(workers)
        finally:
            for proc, _log in workers:
                if proc.poll() is None:
                    proc.kill()
        figures["disk"] = disk_figures(server, figures)
        if args.raw_limit > 0:
            stored = figures["spans_accepted"] + figures["warmup"]["spans_accepted"]
            if hasattr(os, "sync"):
                os.sync()  # the run's files are on disk first: the raw insert starts on a quiet disk
            figures["raw_limit"] = raw_limits(
                BodyFactory(args.traces_per_request, seed=args.seed), args.raw_limit, stored
            )
        print_figures(figures)
        runs.append(figures)
        if args.json:
            print(
                json.dumps(
                    {
                        "bench": "ingest_otlp",
                        "machine": machine,
                        "params": {
                            "traces_per_request": args.traces_per_request,
                            "spans_per_request": args.traces_per_request * SPANS_PER_TRACE,
                            "clients": args.clients,
                            "duration_s": None if args.spans else args.duration,
                            "spans": args.spans,
                            "warmup_s": args.warmup,
                            "gzip": args.gzip,
                            "rate_spans_per_s": args.rate,
                            "store": "postgres" if args.database_url else "sqlite",
                            "external_url": args.url,
                            "client_loop": loop_name,
                            "workers": args.workers,
                        },
                        "server_ready_s": round(server.ready_s, 3),
                        "figures": figures,
                    }
                )
            )
        return 0

    if not args.rates:
        print_header(args, machine, loop_name)
        return run_against_server(args, measure)
    # A sweep: each load against a fresh server (on SQLite a fresh store), in the order given; with
    # --url, one after another against that server.
    for rate in args.rates:
        args.rate = rate
        print_header(args, machine, loop_name)
        status = run_against_server(args, measure)
        if status != 0:
            return status
        print()
    rows = load_sweep(args.rates, runs)
    print_load_sweep(rows, fresh=not args.url)
    if args.json:
        print(json.dumps({"bench": "ingest_otlp_sweep", "machine": machine, "loads": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
