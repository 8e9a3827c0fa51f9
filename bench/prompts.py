"""Prompt fetch latency: ``GET /api/public/v2/prompts/{name}?label=production`` under concurrency.

Usage::

    .venv/bin/python bench/prompts.py                          # SQLite, starts a server
    .venv/bin/python bench/prompts.py --database-url postgresql://postgres@127.0.0.1:5432/db
    .venv/bin/python bench/prompts.py --concurrency 1 8 32 --requests 5000
    .venv/bin/python bench/prompts.py --url http://127.0.0.1:3000 --public-key pk-lf-… \\
        --secret-key sk-lf-…                                  # a running server

Creates three prompts in the bench project: a ~1.5 KB text prompt with variables, a base text
prompt, and a chat prompt whose system message references the base by label
(``@@@langfusePrompt:name=…|label=production@@@``) followed by a placeholder. Then, for each
case and each concurrency, C clients (one keep-alive connection each) send requests back to
back: a warm-up, then ``--requests`` measured ones. Cases: the text prompt, the chat prompt
(resolved on the server, served from its cache), the text prompt with ``resolve=false`` (not
cached: read from the store every time), and as a floor the unauthenticated health route (no
database read). Prints p50/p95/p99/max, requests/s and the server's
CPU per case. Last, the cost of a label change: one client moves a label (PATCH) then reads
twice, so the first read is the one after invalidation and the second a cache hit; for the
text prompt (its own label moved) and the chat prompt (the referenced base's label moved).
Every prompt change invalidates the project's whole prompt cache (one counter per project).
Target: p99 < 10 ms on the 2-core machine. Never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from _common import (
    Server,
    add_server_args,
    client_cpu_seconds,
    cpu_seconds,
    event_loop_runner,
    fmt,
    latency_figures,
    machine_facts,
    print_machine,
    prose,
    run_against_server,
    store_label,
)

TARGET_P99_MS = 10.0
PROMPTS = "/api/public/v2/prompts"
TEXT = "bench/support/answer"
BASE = "bench/shared/tone"
CHAT = "bench/support/chat"


@dataclass
class Case:
    name: str
    prompt: str
    params: dict[str, str]


CASES = (
    Case("baseline: GET /api/public/health", "", {}),
    Case("text prompt", TEXT, {"label": "production"}),
    Case("chat prompt + reference (resolved)", CHAT, {"label": "production"}),
    Case("text prompt, resolve=false", TEXT, {"label": "production", "resolve": "false"}),
)


@dataclass
class Result:
    case: str
    concurrency: int
    requests: int
    elapsed_s: float
    latencies_ms: list[float]
    statuses: Counter[int] = field(default_factory=Counter)
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        lat = latency_figures(self.latencies_ms)
        return {
            "case": self.case,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "rps": round(self.requests / self.elapsed_s, 1) if self.elapsed_s else None,
            "latency_ms": lat,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_cpu_pct_of_core": round(100 * self.server_cpu_s / self.elapsed_s, 1)
            if self.server_cpu_s is not None and self.elapsed_s
            else None,
            "client_cpu_pct_of_core": round(100 * self.client_cpu_s / self.elapsed_s, 1)
            if self.elapsed_s
            else None,
            "meets_target": lat["p99"] is not None and lat["p99"] < TARGET_P99_MS,
        }


def path_of(name: str) -> str:
    return f"{PROMPTS}/{quote(name, safe='')}"


# --------------------------------------------------------------------------------------------
# Setup


def create_prompts(client: httpx.Client, seed: int) -> dict[str, int]:
    """The bench prompts (a new version each run on an external server); their versions."""
    rng = random.Random(seed)
    text = (
        "You are a support agent for {{company}}. "
        + prose(rng, 1400)
        + " Customer: {{customer}}. Question: {{question}}"
    )
    bodies: list[dict[str, Any]] = [
        {"name": BASE, "prompt": "Answer kindly. " + prose(rng, 300), "labels": ["production"]},
        {"name": BASE, "prompt": "Answer briefly. " + prose(rng, 300), "labels": []},
        {
            "name": TEXT,
            "prompt": text,
            "labels": ["production"],
            "config": {"model": "gpt-4o", "temperature": 0.2},
            "tags": ["bench"],
        },
        {"name": TEXT, "prompt": text + " (v2)", "labels": []},
        {
            "name": CHAT,
            "type": "chat",
            "prompt": [
                {
                    "role": "system",
                    "content": f"@@@langfusePrompt:name={BASE}|label=production@@@ "
                    + prose(rng, 600),
                },
                {"type": "placeholder", "name": "history"},
                {"role": "user", "content": "{{question}}"},
            ],
            "labels": ["production"],
            "config": {"model": "gpt-4o"},
        },
    ]
    versions: dict[str, int] = {}
    for body in bodies:
        r = client.post(PROMPTS, json=body)
        r.raise_for_status()
        versions.setdefault(body["name"], r.json()["version"])
    return versions


# --------------------------------------------------------------------------------------------
# Load


class RawConnection:
    """One keep-alive HTTP/1.1 connection sending a fixed GET: a few µs of client CPU per
    request, where httpx's async client takes about 2 ms (it would be the bottleneck on two
    cores shared with the server)."""

    def __init__(self, base_url: str, target: str, auth: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {auth}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(head[9:12])

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


class HttpxConnection:
    """The same through ``httpx.AsyncClient`` (one connection)."""

    def __init__(self, base_url: str, target: str, auth: str) -> None:
        self.target = target
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": auth},
            timeout=30,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def get(self) -> int:
        r = await self.client.get(self.target)
        await r.aread()
        return r.status_code

    async def aclose(self) -> None:
        await self.client.aclose()


async def run_case(
    base_url: str,
    auth: str,
    case: Case,
    concurrency: int,
    n: int,
    warmup: int,
    pid: int | None,
    client_kind: str,
) -> Result:
    """``concurrency`` clients on their own keep-alive connection share ``warmup + n`` requests;
    only the last ``n`` are measured."""
    path = path_of(case.prompt) if case.prompt else "/api/public/health"
    target = f"{path}?{urlencode(case.params)}" if case.params else path
    kind = RawConnection if client_kind == "raw" else HttpxConnection
    clients = [kind(base_url, target, auth) for _ in range(concurrency)]
    result = Result(case.name, concurrency, n, 0.0, [])
    remaining = {"warm": warmup, "measured": n}

    async def worker(client: RawConnection | HttpxConnection, phase: str) -> None:
        while remaining[phase] > 0:
            remaining[phase] -= 1
            t = time.perf_counter()
            status = await client.get()
            if phase == "measured":
                result.latencies_ms.append((time.perf_counter() - t) * 1000)
                result.statuses[status] += 1

    try:
        await asyncio.gather(*(worker(c, "warm") for c in clients))
        server_cpu = cpu_seconds(pid) if pid else None
        client_cpu = client_cpu_seconds()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c, "measured") for c in clients))
        result.elapsed_s = time.perf_counter() - t0
        result.client_cpu_s = client_cpu_seconds() - client_cpu
        if server_cpu is not None and pid:
            result.server_cpu_s = cpu_seconds(pid) - server_cpu
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return result


# --------------------------------------------------------------------------------------------
# Label changes


def label_changes(client: httpx.Client, versions: dict[str, int], rounds: int) -> dict[str, Any]:
    """Move a production label, then read twice: after invalidation, then from the cache."""
    out: dict[str, Any] = {}
    plans = (
        ("text prompt (its label moved)", TEXT, TEXT),
        ("chat prompt (the referenced base's label moved)", BASE, CHAT),
    )
    for title, moved, read in plans:
        first_version = versions[moved]
        patch_ms: list[float] = []
        first_ms: list[float] = []
        second_ms: list[float] = []
        statuses: Counter[int] = Counter()
        for i in range(rounds):
            target = first_version + (i + 1) % 2
            t = time.perf_counter()
            r = client.patch(
                f"{path_of(moved)}/versions/{target}", json={"newLabels": ["production"]}
            )
            patch_ms.append((time.perf_counter() - t) * 1000)
            statuses[r.status_code] += 1
            for sink in (first_ms, second_ms):
                t = time.perf_counter()
                r = client.get(path_of(read), params={"label": "production"})
                sink.append((time.perf_counter() - t) * 1000)
                statuses[r.status_code] += 1
        out[title] = {
            "rounds": rounds,
            "patch_ms": latency_figures(patch_ms),
            "first_read_ms": latency_figures(first_ms),
            "second_read_ms": latency_figures(second_ms),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
        }
    return out


# --------------------------------------------------------------------------------------------
# Report


def print_results(results: list[dict[str, Any]], changes: dict[str, Any]) -> None:
    print(f"\nGET {PROMPTS}/{{name}} (target p99 < {TARGET_P99_MS:.0f} ms)")
    header = (
        f"  {'case':<37} {'C':>3} {'req/s':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
        f"  {'server CPU':>10} {'client CPU':>10}  statuses"
    )
    print(header)
    for f in results:
        lat = f["latency_ms"]
        mark = "" if f["meets_target"] else "  (p99 over target)"
        print(
            f"  {f['case']:<37} {f['concurrency']:>3} {fmt(f['rps'], ',.0f'):>8} "
            f"{fmt(lat['p50'], '.2f'):>7} {fmt(lat['p95'], '.2f'):>7} {fmt(lat['p99'], '.2f'):>7} "
            f"{fmt(lat['max'], '.1f'):>7}  {fmt(f['server_cpu_pct_of_core'], '.0f'):>9}% "
            f"{fmt(f['client_cpu_pct_of_core'], '.0f'):>9}%  {f['statuses']}{mark}"
        )
    print("\nlabel change, then two reads (one client, ms)")
    for title, c in changes.items():
        print(f"  {title}  ({c['rounds']} rounds, statuses {c['statuses']})")
        for key, label in (
            ("patch_ms", "PATCH label"),
            ("first_read_ms", "first read (after invalidation)"),
            ("second_read_ms", "second read (cache hit)"),
        ):
            lat = c[key]
            print(
                f"    {label:<34} p50 {fmt(lat['p50'], '.2f')}  p95 {fmt(lat['p95'], '.2f')}  "
                f"p99 {fmt(lat['p99'], '.2f')}  max {fmt(lat['max'], '.2f')}"
            )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_server_args(p, load=False)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=4000, help="measured requests per run")
    p.add_argument("--warmup-requests", type=int, default=500)
    p.add_argument("--label-rounds", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load client: raw keep-alive HTTP/1.1 over asyncio (cheap) or httpx.AsyncClient",
    )
    p.add_argument("--workers", type=int, default=1, help="API processes of the started server")
    args = p.parse_args()
    if args.workers > 1:
        os.environ["TRACEHOUSE_WORKERS"] = str(args.workers)  # read by the started server
    machine = machine_facts()
    runner, loop_name = event_loop_runner()
    print_machine(machine)
    print(
        f"store   : {store_label(args)}; client {args.client} on {loop_name}; "
        f"workers {args.workers}"
    )

    def measure(server: Server, auth: str, pid: int | None) -> int:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": auth}, timeout=30
        ) as client:
            versions = create_prompts(client, args.seed)
            results = []
            for case in CASES:
                for c in args.concurrency:
                    res = runner(
                        run_case(
                            server.base_url,
                            auth,
                            case,
                            c,
                            args.requests,
                            args.warmup_requests,
                            pid,
                            args.client,
                        )
                    )
                    results.append(res.figures())
                    sys.stdout.write(".")
                    sys.stdout.flush()
            changes = label_changes(client, versions, args.label_rounds)
        print_results(results, changes)
        if args.json:
            print(
                json.dumps(
                    {
                        "bench": "prompts",
                        "machine": machine,
                        "store": "postgres" if args.database_url else "sqlite",
                        "workers": args.workers,
                        "client_loop": loop_name,
                        "client": args.client,
                        "figures": results,
                        "label_changes": changes,
                    }
                )
            )
        return 0

    return run_against_server(args, measure)


if __name__ == "__main__":
    sys.exit(main())
