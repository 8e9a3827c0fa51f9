"""Load a realistic tracing data set into a tracehouse store, fast, through the real write path.

Usage::

    .venv/bin/python bench/seed.py --data-dir /tmp/th-seed                  # 100k traces, 1M obs
    .venv/bin/python bench/seed.py --data-dir /tmp/th-seed --traces 20000   # smaller
    .venv/bin/python bench/seed.py --database-url postgresql://user:pw@host/db

Events are built as JSON batch elements, parsed by the ingestion edge (``parse_event``) and merged
by ``tracehouse.store.writes.apply_events`` in big in-process transactions (no HTTP), so the rows
are exactly what ingestion makes. The data: several projects (the first gets most traces), users
with Zipf-like activity, sessions, tags, environments, trace names, nested spans, tools, events and
generations with model, usage and cost, timestamps over the last 30 days, 300 B-1 KB of input and
output. Fresh API keys are created for every project and printed; for SQLite they are also written
to ``<data-dir>/bench-keys.json`` for ``bench/read_latency.py``. Prints rows/s and on-disk size.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    ORG_ID,
    PROJECT_ID,
    SEED_KEYS_FILE,
    machine_facts,
    mask_url,
    print_machine,
    prose,
)
from sqlalchemy import text

from tracehouse.config import Settings
from tracehouse.ingest.batch import parse_event
from tracehouse.pricing.builtin import builtin_models
from tracehouse.pricing.registry import ModelRegistry
from tracehouse.services.bootstrap import create_api_key
from tracehouse.store import models as model_store
from tracehouse.store import projects as project_store
from tracehouse.store.db import make_engine, migrate
from tracehouse.store.writes import apply_events

DAYS = 30
# Share of traces per project: the first (the one read benchmarks query) holds most of them.
PROJECT_SHARES = ((PROJECT_ID, 0.6), ("bench-project-2", 0.25), ("bench-project-3", 0.15))
USERS_PER_PROJECT = 5_000
TRACES_PER_SESSION = 4  # on average, for the ~70% of traces that have a session
TRACE_NAMES = tuple(
    [
        "chat-completion",
        "rag-query",
        "summarize-document",
        "classify-ticket",
        "translate",
        "extract-entities",
        "agent-run",
        "sql-generation",
        "code-review",
        "embed-documents",
        "moderation",
        "support-reply",
        "search-rerank",
        "email-draft",
        "intent-detection",
    ]
)
TAGS = tuple(
    [
        "prod",
        "beta",
        "experiment-a",
        "experiment-b",
        "mobile",
        "web",
        "api",
        "enterprise",
        "free-tier",
        "eu",
        "us",
        "needs-review",
        "regression",
        "golden",
    ]
)
ENVIRONMENTS = (("production", 0.7), ("staging", 0.2), ("development", 0.1))
MODELS = (
    ("gpt-4o", 0.3),
    ("gpt-4o-mini", 0.3),
    ("claude-3-5-sonnet-20241022", 0.15),
    ("gpt-3.5-turbo", 0.1),
    ("text-embedding-3-small", 0.05),
    ("my-finetune-v3", 0.1),  # not in the built-in prices: cost comes with the event
)
SPAN_NAMES = ("retrieve-context", "rerank", "format-prompt", "parse-output", "call-tool")
TOOL_NAMES = ("web-search", "sql-query", "calculator", "get-weather", "lookup-order")
EVENT_NAMES = ("cache-hit", "guardrail-check", "user-feedback", "retry")
TEXT_POOL_SIZE = 4_000


def zipf_cumulative(n: int, s: float = 1.1) -> list[float]:
    total = 0.0
    out = []
    for i in range(1, n + 1):
        total += 1.0 / i**s
        out.append(total)
    return out


class DataSet:
    """Draws traces as lists of wire events (JSON batch elements) from one seeded RNG."""

    def __init__(self, rng: random.Random, n_traces: int, obs_per_trace: int) -> None:
        self.rng = rng
        self.obs_per_trace = obs_per_trace
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.texts = [prose(rng, rng.randint(300, 1000)) for _ in range(TEXT_POOL_SIZE)]
        self.user_cum = zipf_cumulative(USERS_PER_PROJECT)
        self.tag_cum = zipf_cumulative(len(TAGS), 0.8)
        self.name_cum = zipf_cumulative(len(TRACE_NAMES), 0.9)
        self.n_sessions = max(1, int(n_traces * 0.7 / TRACES_PER_SESSION))
        self._ids = itertools.count()

    def _zipf(self, cum: list[float]) -> int:
        return bisect.bisect_left(cum, self.rng.random() * cum[-1])

    def _pick(self, weighted: tuple[tuple[str, float], ...]) -> str:
        r = self.rng.random()
        for value, share in weighted:
            r -= share
            if r < 0:
                return value
        return weighted[-1][0]

    def _text(self) -> str:
        return self.rng.choice(self.texts)

    @staticmethod
    def _iso(t: datetime) -> str:
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def trace(self, project_index: int) -> list[dict[str, Any]]:
        rng = self.rng
        n = next(self._ids)
        trace_id = f"t{project_index}-{n:08d}-{rng.getrandbits(32):08x}"
        start = self.now - timedelta(seconds=rng.random() * DAYS * 86_400)
        env = self._pick(ENVIRONMENTS)
        tags = sorted({TAGS[self._zipf(self.tag_cum)] for _ in range(rng.randint(0, 3))})
        session = (
            f"sess-{project_index}-{rng.randrange(self.n_sessions):07d}"
            if rng.random() < 0.7
            else None
        )
        body = {
            "id": trace_id,
            "timestamp": self._iso(start),
            "name": TRACE_NAMES[self._zipf(self.name_cum)],
            "userId": f"user-{self._zipf(self.user_cum):05d}",
            "sessionId": session,
            "tags": tags,
            "environment": env,
            "release": f"v1.{rng.randint(0, 9)}",
            "input": {"question": self._text()},
            "output": self._text(),
            "metadata": {"region": rng.choice(("eu", "us", "apac")), "plan": "pro"},
        }
        events = [self._event("trace-create", start, body)]
        events.extend(self._observations(trace_id, start, env))
        return events

    def _event(self, kind: str, at: datetime, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"e{next(self._ids)}",
            "type": kind,
            "timestamp": self._iso(at),
            "body": body,
        }

    def _observations(self, trace_id: str, start: datetime, env: str) -> list[dict[str, Any]]:
        rng = self.rng
        root = f"{trace_id}-o0"
        t = start
        children: list[dict[str, Any]] = []
        for i in range(1, self.obs_per_trace):
            t = t + timedelta(milliseconds=rng.randint(5, 400))
            end = t + timedelta(milliseconds=rng.randint(20, 3000))
            common = {
                "id": f"{trace_id}-o{i}",
                "traceId": trace_id,
                "parentObservationId": root,
                "startTime": self._iso(t),
                "environment": env,
            }
            r = rng.random()
            if r < 0.4:
                children.append(self._event("generation-create", t, self._generation(common, end)))
            elif r < 0.6:
                body = {
                    **common,
                    "name": rng.choice(SPAN_NAMES),
                    "endTime": self._iso(end),
                    "input": {"query": self._text()},
                    "output": {"documents": [self._text()[:200], self._text()[:200]]},
                    "metadata": {"k": rng.randint(3, 10)},
                }
                children.append(self._event("span-create", t, body))
            elif r < 0.8:
                body = {
                    **common,
                    "name": rng.choice(TOOL_NAMES),
                    "endTime": self._iso(end),
                    "input": {"arguments": self._text()},
                    "output": self._text(),
                }
                children.append(self._event("tool-create", t, body))
            else:
                level = "WARNING" if rng.random() < 0.1 else "DEFAULT"
                body = {
                    **common,
                    "name": rng.choice(EVENT_NAMES),
                    "level": level,
                    "input": self._text(),
                }
                children.append(self._event("event-create", t, body))
        root_body = {
            "id": root,
            "traceId": trace_id,
            "name": "handle-request",
            "startTime": self._iso(start),
            "endTime": self._iso(t + timedelta(milliseconds=rng.randint(1, 50))),
            "environment": env,
            "input": {"request": self._text()},
            "output": self._text(),
            "level": "ERROR" if rng.random() < 0.02 else "DEFAULT",
        }
        return [self._event("span-create", start, root_body), *children]

    def _generation(self, common: dict[str, Any], end: datetime) -> dict[str, Any]:
        rng = self.rng
        model = self._pick(MODELS)
        n_in, n_out = rng.randint(50, 4000), rng.randint(10, 1200)
        usage: dict[str, Any] = {"input": n_in, "output": n_out, "total": n_in + n_out}
        if model == "my-finetune-v3":
            usage.update(inputCost=n_in * 2e-6, outputCost=n_out * 6e-6)
        first_token = min(end, datetime.fromisoformat(common["startTime"]) + timedelta(seconds=0.3))
        prompt = rng.choice(("support-prompt", "rag-prompt", None))
        body = {
            **common,
            "name": "llm-call",
            "endTime": self._iso(end),
            "completionStartTime": self._iso(first_token),
            "model": model,
            "modelParameters": {"temperature": rng.choice((0, 0.2, 0.7)), "max_tokens": 1024},
            "input": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": self._text()},
            ],
            "output": {"role": "assistant", "content": self._text()},
            "usage": usage,
        }
        if prompt is not None:
            body.update(promptName=prompt, promptVersion=rng.randint(1, 5))
        return body


def project_for(rng: random.Random) -> int:
    r = rng.random()
    for i, (_, share) in enumerate(PROJECT_SHARES):
        r -= share
        if r < 0:
            return i
    return len(PROJECT_SHARES) - 1


def on_disk_bytes(conn: Any, settings: Settings) -> int:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db = settings.data_dir / "tracehouse.db"
        return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Seed a tracehouse store with a realistic data set via apply_events.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path, help="SQLite data dir (created if missing)")
    where.add_argument("--database-url", help="PostgreSQL URL (postgresql://...)")
    p.add_argument("--traces", type=int, default=100_000, help="traces over all projects")
    p.add_argument(
        "--observations-per-trace", type=int, default=10, help="incl. the root span (>= 1)"
    )
    p.add_argument(
        "--batch-traces",
        type=int,
        default=None,
        help="traces per transaction (default: 2000 on SQLite, 250 on PostgreSQL, where the "
        "writer takes one advisory lock per entity and the shared lock table holds "
        "max_locks_per_transaction x max_connections, 6,400 by default)",
    )
    p.add_argument("--seed", type=int, default=1, help="RNG seed")
    p.add_argument(
        "--no-pricing", action="store_true", help="skip model matching (usage/cost as sent)"
    )
    args = p.parse_args(argv)
    if args.batch_traces is None:
        args.batch_traces = 250 if args.database_url else 2_000
    if args.traces < 1 or args.observations_per_trace < 1 or args.batch_traces < 1:
        p.error("--traces, --observations-per-trace and --batch-traces must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = (
        Settings(database_url=args.database_url)
        if args.database_url
        else Settings(data_dir=args.data_dir, database_url=None)
    )
    machine = machine_facts()
    where = mask_url(args.database_url) if args.database_url else f"SQLite in {args.data_dir}"
    print("tracehouse seed (in-process apply_events, no HTTP)")
    print_machine(machine)
    n_obs = args.traces * args.observations_per_trace
    print(
        f"params  : {args.traces:,} traces x {args.observations_per_trace} observations "
        f"= {n_obs:,} observations, {len(PROJECT_SHARES)} projects, "
        f"{args.batch_traces:,} traces/transaction, store: {where}"
    )
    sys.stdout.flush()

    engine = make_engine(settings)
    migrate(engine)
    with engine.begin() as conn:
        project_store.ensure_organization(conn, ORG_ID, ORG_ID)
        for project_id, _ in PROJECT_SHARES:
            project_store.ensure_project(conn, project_id, ORG_ID, project_id)
    keys = {
        project_id: create_api_key(engine, project_id, note="bench/seed.py")
        for project_id, _ in PROJECT_SHARES
    }
    models = (
        None if args.no_pricing else ModelRegistry(builtin_models(), model_store.loader(engine))
    )

    rng = random.Random(args.seed)
    data = DataSet(rng, args.traces, args.observations_per_trace)
    project_ids = [p for p, _ in PROJECT_SHARES]
    t0 = time.perf_counter()
    build_s = 0.0
    events_total = 0
    done = 0
    last_print = t0
    while done < args.traces:
        n = min(args.batch_traces, args.traces - done)
        tb = time.perf_counter()
        batch = []
        for _ in range(n):
            index = project_for(rng)
            for raw in data.trace(index):
                event = parse_event(raw)
                assert event is not None  # no sdk-log events here
                batch.append((project_ids[index], event))
        build_s += time.perf_counter() - tb
        with engine.begin() as conn:
            apply_events(conn, batch, models)
        done += n
        events_total += len(batch)
        now = time.perf_counter()
        if now - last_print > 10 or done == args.traces:
            rows = done * (1 + args.observations_per_trace)
            print(f"  {done:>9,} traces  {rows / (now - t0):>9,.0f} rows/s  {now - t0:6.1f} s")
            sys.stdout.flush()
            last_print = now
    elapsed = time.perf_counter() - t0

    with engine.connect() as conn:
        counts = {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("traces", "observations", "sessions")
        }
        size = on_disk_bytes(conn, settings)
    engine.dispose()

    rows = counts["traces"] + counts["observations"] + counts["sessions"]
    print()
    print("figures")
    print(f"  elapsed             {elapsed:.1f} s ({build_s:.1f} s building + parsing events)")
    print(f"  events              {events_total:,}  ({events_total / elapsed:,.0f} /s)")
    print(
        f"  rows                {rows:,}  ({rows / elapsed:,.0f} rows/s): traces "
        f"{counts['traces']:,}, observations {counts['observations']:,}, "
        f"sessions {counts['sessions']:,}"
    )
    per_obs = size / max(counts["observations"], 1)
    print(
        f"  on disk             {size / 1024**2:,.1f} MiB  ({per_obs:,.0f} B per observation, "
        "traces and indexes included)"
    )
    print("api keys (secrets shown once)")
    for project_id, k in keys.items():
        print(f"  {project_id:<18} {k.public_key}  {k.secret_key}")
    if not args.database_url:
        keys_path = args.data_dir / SEED_KEYS_FILE
        keys_path.write_text(
            json.dumps(
                {
                    p: {"public_key": k.public_key, "secret_key": k.secret_key}
                    for p, k in keys.items()
                },
                indent=2,
            )
        )
        print(f"  written to {keys_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
