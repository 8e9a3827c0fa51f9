"""Read-path latency of tracehouse's public API on a seeded store: p50/p95/p99 per query kind.

Usage::

    .venv/bin/python bench/seed.py --data-dir /tmp/th-seed --traces 20000
    .venv/bin/python bench/read_latency.py --data-dir /tmp/th-seed              # starts a server
    .venv/bin/python bench/read_latency.py --data-dir /tmp/th-seed --explain misses
    .venv/bin/python bench/read_latency.py --url http://127.0.0.1:3000 \\
        --public-key pk-lf-... --secret-key sk-lf-...                           # running server

Starts ``tracehouse serve`` on the seeded data dir (keys from ``bench-keys.json`` written by
``bench/seed.py``) or on a seeded ``--database-url`` (the bench key pair is added to
``bench-project`` at start), or uses ``--url``. One client sends the requests one after another (latency,
not throughput); query values (users, tags, trace ids, time windows) are drawn from the data.
Prints a table with the targets (list p95 < 150 ms, detail p95 < 50 ms) beside the figures.
``--explain`` (SQLite data dir) then replays one request of each case in-process and prints the
SQL it ran with SQLite's EXPLAIN QUERY PLAN. Never asserts.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import (
    PROJECT_ID,
    Server,
    add_server_args,
    basic_auth,
    fmt,
    latency_figures,
    machine_facts,
    print_machine,
    run_against_server,
    seeded_keys,
    store_label,
)

LIST_TARGET_MS = 150.0
DETAIL_TARGET_MS = 50.0
CURSOR_WALK = 10  # pages followed through the cursor before starting again from the first

Request = tuple[str, dict[str, Any]]  # path, query parameters


@dataclass
class Sample:
    """Values drawn from the seeded data, to vary the requests."""

    trace_ids: list[str]
    user_ids: list[str]
    tags: list[str]
    newest: datetime
    oldest: datetime


@dataclass
class Case:
    name: str
    target_ms: float
    next_request: Callable[[random.Random, Sample], Request]
    follow_cursor: bool = False  # v2 observations: walk pages through meta.cursor
    latencies_ms: list[float] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _window(rng: random.Random, s: Sample) -> dict[str, Any]:
    span = max((s.newest - s.oldest).total_seconds() - 86_400, 0)
    start = s.oldest + timedelta(seconds=rng.random() * span)
    return {"fromTimestamp": _iso(start), "toTimestamp": _iso(start + timedelta(days=1))}


def make_cases() -> list[Case]:
    desc = {"orderBy": "timestamp.desc"}
    return [
        Case("traces list, first page", LIST_TARGET_MS, lambda r, s: ("/api/public/traces", {})),
        Case(
            "traces by userId",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/traces", {"userId": r.choice(s.user_ids), **desc}),
        ),
        Case(
            "traces by tags",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/traces", {"tags": r.choice(s.tags), **desc}),
        ),
        Case(
            "traces in a 1-day window",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/traces", {**_window(r, s), **desc}),
        ),
        Case(
            "trace detail",
            DETAIL_TARGET_MS,
            lambda r, s: (f"/api/public/traces/{r.choice(s.trace_ids)}", {}),
        ),
        Case(
            "v2 observations, first page",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/v2/observations", {}),
        ),
        Case(
            "v2 observations, cursor pages",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/v2/observations", {}),
            follow_cursor=True,
        ),
        Case(
            "v2 observations by traceId",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/v2/observations", {"traceId": r.choice(s.trace_ids)}),
        ),
        Case(
            "v2 obs by traceId, cursor pages",
            LIST_TARGET_MS,
            lambda r, s: (
                "/api/public/v2/observations",
                {"traceId": r.choice(s.trace_ids), "limit": 3},
            ),
            follow_cursor=True,
        ),
        Case("sessions list", LIST_TARGET_MS, lambda r, s: ("/api/public/sessions", {})),
        Case(
            "v1 observations type=GENERATION",
            LIST_TARGET_MS,
            lambda r, s: ("/api/public/observations", {"type": "GENERATION"}),
        ),
    ]


def draw_sample(client: httpx.Client) -> tuple[Sample, int | None]:
    """Trace ids, users, tags and the time range of the project (and its trace count)."""
    trace_ids: list[str] = []
    users: set[str] = set()
    tags: set[str] = set()
    times: list[datetime] = []
    total = None
    for page in (1, 2, 5, 20, 50):
        r = client.get("/api/public/traces", params={"limit": 100, "page": page})
        r.raise_for_status()
        body = r.json()
        total = body["meta"].get("totalItems")
        for t in body["data"]:
            trace_ids.append(t["id"])
            if t.get("userId"):
                users.add(t["userId"])
            tags.update(t.get("tags") or [])
            times.append(datetime.fromisoformat(t["timestamp"].replace("Z", "+00:00")))
    if not trace_ids:
        raise RuntimeError("the project has no traces: seed it first (bench/seed.py)")
    now = datetime.now(UTC)
    sample = Sample(
        trace_ids=trace_ids,
        user_ids=sorted(users) or ["nobody"],
        tags=sorted(tags) or ["none"],
        newest=max(times, default=now),
        oldest=min(times, default=now - timedelta(days=30)),
    )
    return sample, total


def run_case(
    client: httpx.Client, case: Case, sample: Sample, n: int, warmup: int, seed: int
) -> None:
    """``warmup`` unmeasured then ``n`` measured requests; cursor cases measure followed pages."""
    rng = random.Random(seed)
    cursor: str | None = None
    pages = 0
    base: Request = ("", {})
    sent = 0
    while len(case.latencies_ms) < n and sent < 4 * (n + warmup):
        if cursor is not None and pages < CURSOR_WALK:
            path, params = base[0], {**base[1], "cursor": cursor}
        else:
            base = case.next_request(rng, sample)
            path, params = base
            pages = 0
        t = time.perf_counter()
        r = client.get(path, params=params)
        elapsed_ms = (time.perf_counter() - t) * 1000
        sent += 1
        pages += 1
        body = r.json() if r.status_code == 200 else {}
        cursor = (body.get("meta") or {}).get("cursor") if case.follow_cursor else None
        if sent <= warmup or (case.follow_cursor and "cursor" not in params):
            continue  # warm-up, or the first page of a cursor walk (its own case)
        case.latencies_ms.append(elapsed_ms)
        case.statuses[r.status_code] = case.statuses.get(r.status_code, 0) + 1
        data = body.get("data")
        case.items.append(len(data) if isinstance(data, list) else 1)


def measure_all(args: argparse.Namespace, base_url: str, auth: str) -> list[dict[str, Any]]:
    cases = make_cases()
    headers = {"Authorization": auth}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
        sample, total = draw_sample(client)
        print(
            f"data    : project totalItems {fmt(total, ',')} traces; sample of "
            f"{len(sample.trace_ids)} trace ids, {len(sample.user_ids)} users, "
            f"{len(sample.tags)} tags, {_iso(sample.oldest)} .. {_iso(sample.newest)}"
        )
        sys.stdout.flush()
        for i, case in enumerate(cases):
            run_case(client, case, sample, args.requests, args.warmup_requests, args.seed + i)
    results = []
    for case in cases:
        lat = latency_figures(case.latencies_ms)
        p95 = lat["p95"]
        results.append(
            {
                "case": case.name,
                "requests": len(case.latencies_ms),
                "latency_ms": lat,
                "target_p95_ms": case.target_ms,
                "meets_target": None if p95 is None else p95 < case.target_ms,
                "mean_items": round(sum(case.items) / len(case.items), 1) if case.items else None,
                "http_statuses": case.statuses,
            }
        )
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    print()
    head = (
        f"  {'case':<34} {'n':>5} {'items':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
        f"  {'target p95':>10}  verdict"
    )
    print("latency ms (one client, sequential requests)")
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in results:
        lat = r["latency_ms"]
        verdict = {True: "ok", False: "MISSES", None: "n/a"}[r["meets_target"]]
        statuses = "" if set(r["http_statuses"]) <= {200} else f"  HTTP {r['http_statuses']}"
        print(
            f"  {r['case']:<34} {r['requests']:>5} {fmt(r['mean_items'], '.0f'):>6} "
            f"{fmt(lat['p50']):>8} {fmt(lat['p95']):>8} {fmt(lat['p99']):>8} "
            f"{fmt(lat['max']):>8}  {'< ' + format(r['target_p95_ms'], '.0f'):>10}  "
            f"{verdict}{statuses}"
        )


# --------------------------------------------------------------------------------------------
# EXPLAIN QUERY PLAN (SQLite): replay one request per case in-process, capturing its SQL
# --------------------------------------------------------------------------------------------


def explain(args: argparse.Namespace, results: list[dict[str, Any]], auth: str) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from tracehouse.app import create_app
    from tracehouse.config import Settings

    wanted = {r["case"] for r in results if args.explain == "all" or not r["meets_target"]}
    if not wanted:
        print("\nexplain: every case meets its target; nothing to explain (--explain all)")
        return
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "api_keys" not in statement and not statement.lstrip().upper().startswith("PRAGMA"):
            captured.append((statement, params))

    db_path = args.data_dir / "tracehouse.db"
    settings = Settings(data_dir=args.data_dir, database_url=None)
    event.listen(Engine, "before_cursor_execute", capture)
    plans = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        with TestClient(create_app(settings), headers={"Authorization": auth}) as client:
            sample, _ = draw_sample(client)  # type: ignore[arg-type]
            for i, case in enumerate(make_cases()):
                if case.name not in wanted:
                    continue
                path, params = case.next_request(random.Random(args.seed + i), sample)
                if case.follow_cursor:
                    first = client.get(path, params=params).json()
                    params = {**params, "cursor": (first.get("meta") or {}).get("cursor")}
                captured.clear()
                client.get(path, params=params)
                print(f"\n=== {case.name}: GET {path} {params}")
                for statement, bound in captured:
                    print("  SQL: " + " ".join(statement.split()))
                    if bound:
                        print(f"  params: {_short(bound)}")
                    try:
                        rows = plans.execute("EXPLAIN QUERY PLAN " + statement, bound).fetchall()
                    except sqlite3.Error as exc:
                        print(f"  (no plan: {exc})")
                        continue
                    for _id, parent, _, detail in rows:
                        depth = _depth(rows, parent)
                        print("    " + "  " * depth + detail)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
        plans.close()


def _depth(rows: list[tuple[int, int, int, str]], parent: int) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth = 0
    while parent:
        depth += 1
        parent = parents.get(parent, 0)
    return depth


def _short(params: Any) -> str:
    text = repr(params)
    return text if len(text) <= 200 else text[:200] + "..."


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Measure read latency of tracehouse's public API. Prints figures; never asserts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", type=Path, default=None, help="seeded SQLite data dir to serve")
    p.add_argument("--project", default=PROJECT_ID, help="seeded project whose keys to use")
    p.add_argument("--requests", type=int, default=200, help="measured requests per case")
    p.add_argument("--warmup-requests", type=int, default=5, help="unmeasured requests per case")
    p.add_argument("--seed", type=int, default=1, help="RNG seed of the query values")
    p.add_argument(
        "--explain",
        choices=("none", "misses", "all"),
        default="none",
        help="SQLite data dir: print EXPLAIN QUERY PLAN of the cases that miss (or all)",
    )
    add_server_args(p, load=False)
    args = p.parse_args(argv)
    if args.requests < 1:
        p.error("--requests must be at least 1")
    if not args.url and args.data_dir is None and not args.database_url:
        p.error("give --data-dir (seeded SQLite), --database-url (seeded PostgreSQL) or --url")
    if args.explain != "none" and args.data_dir is None:
        p.error("--explain needs --data-dir (SQLite)")
    if args.data_dir is not None and not args.url and args.public_key.startswith("pk-lf-bench"):
        keys = seeded_keys(args.data_dir, args.project)
        if keys is None:
            p.error(f"no keys of {args.project} in {args.data_dir}: run bench/seed.py first")
        args.public_key, args.secret_key = keys
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_facts()
    print("tracehouse read latency benchmark (public API)")
    print_machine(machine)
    store = f"SQLite in {args.data_dir}" if args.data_dir and not args.url else store_label(args)
    print(
        f"params  : {args.requests} requests per case (+{args.warmup_requests} warm-up), "
        f"one client, store: {store}"
    )
    sys.stdout.flush()
    auth = basic_auth(args.public_key, args.secret_key)
    results: list[dict[str, Any]] = []

    def measure(server: Server, _auth: str, _pid: int | None) -> int:
        results.extend(measure_all(args, server.base_url, _auth))
        print_table(results)
        if args.json:
            print(json.dumps({"bench": "read_latency", "machine": machine, "results": results}))
        return 0

    # Authentication uses the seeded keys; run_against_server passes them on as ``_auth``.
    code = run_against_server(args, measure, data_dir=None if args.url else args.data_dir)
    if code == 0 and args.explain != "none":
        explain(args, results, auth)
    return code


if __name__ == "__main__":
    sys.exit(main())
