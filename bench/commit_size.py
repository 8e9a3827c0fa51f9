"""What a commit costs per span by its size: the work the writer does holding the writers' lock.

Loads a fresh SQLite store (the server's schema and settings) with ``--preload`` spans of the
``ingest_otlp.py`` load, then stores more of it in transactions of each ``--sizes`` spans and
prints, per span: the wall and CPU time of ``commit_prepared`` (the step the writer runs under
the writers' lock; decoding and preparing are not counted) and the bytes it appended to the
write-ahead log. As in the server, no checkpoint runs inside a commit: the log is copied into the
database between the timed commits, every ``--checkpoint-spans`` spans. The sizes take turns
``--rounds`` times, since this machine's speed drifts within minutes.

    .venv/bin/python bench/commit_size.py
    .venv/bin/python bench/commit_size.py --preload 1000000 --sizes 300,1000 --json

A span touches a page of each index on random ids (observation id, trace id): a larger commit
writes each such page once for more spans. It never asserts anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_facts, positive_numbers, print_machine  # noqa: E402
from ingest_otlp import BodyFactory  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402

from tracehouse.config import Settings  # noqa: E402
from tracehouse.ingest.otlp import decode_protobuf  # noqa: E402
from tracehouse.ingest.pipeline import _wal_backlog_bytes  # noqa: E402
from tracehouse.pricing.builtin import builtin_models  # noqa: E402
from tracehouse.pricing.registry import ModelRegistry  # noqa: E402
from tracehouse.store.db import make_engine, migrate  # noqa: E402
from tracehouse.store.projects import ensure_organization, ensure_project  # noqa: E402
from tracehouse.store.writes import commit_prepared, prepare_events  # noqa: E402

PROJECT_ID = "bench-project"
# A statement's step: what it does to which table ("SELECT id FROM observations ..." -> "lookup
# observations", "INSERT INTO traces ..." -> "insert traces").
_STATEMENT = re.compile(r"^\s*(SELECT|INSERT)\b.*?\b(?:FROM|INTO)\s+(\w+)", re.S | re.I)
_VERBS = {"select": "lookup", "insert": "insert"}
COMMIT_STEP = "COMMIT"  # writing the transaction's pages to the log
REST_STEP = "the rest"  # commit_prepared's own Python work between its statements


def step_of(statement: str) -> str:
    """The step a statement of ``commit_prepared`` belongs to (see ``_STATEMENT``)."""
    match = _STATEMENT.match(statement)
    if match is None:
        return statement.split(None, 1)[0].lower() if statement.strip() else "other"
    return f"{_VERBS[match.group(1).lower()]} {match.group(2)}"


class Store:
    """A fresh store and one connection kept open, set up as the server's writer sets its own.

    ``steps``: CPU seconds of the timed commits by step (``step_of``, ``COMMIT_STEP``,
    ``REST_STEP``), summed until ``take_steps`` hands them over.
    """

    def __init__(self, data_dir: Path, traces_per_request: int) -> None:
        self.engine: Engine = make_engine(Settings(data_dir=data_dir))
        migrate(self.engine)
        with self.engine.begin() as conn:
            ensure_organization(conn, "bench-org", "bench")
            ensure_project(conn, PROJECT_ID, "bench-org", "bench")
        self.wal = data_dir / "tracehouse.db-wal"
        self.shm = data_dir / "tracehouse.db-shm"
        self.conn: Connection = self.engine.connect()
        self.conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        self.conn.commit()
        self.models = ModelRegistry(builtin_models(), lambda _project: [])
        self.factory = BodyFactory(traces_per_request)
        self.steps: dict[str, float] = {}
        self._statement_started = 0.0
        self._timing = False
        event.listen(self.engine, "before_cursor_execute", self._before_statement)
        event.listen(self.engine, "after_cursor_execute", self._after_statement)

    def _before_statement(self, *_args: Any) -> None:
        self._statement_started = time.thread_time()

    def _after_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self._timing:
            self._add(step_of(statement), time.thread_time() - self._statement_started)

    def _add(self, step: str, seconds: float) -> None:
        self.steps[step] = self.steps.get(step, 0.0) + seconds

    def take_steps(self) -> dict[str, float]:
        steps, self.steps = self.steps, {}
        return steps

    def store(self, spans: int) -> tuple[float, float, int]:
        """Store at least ``spans`` new spans in one transaction: (wall s, CPU s, spans)."""
        events = []
        stored = 0  # spans; the events also hold each trace's own
        while stored < spans:
            body, _ = self.factory.build()
            decoded = decode_protobuf(body).events
            events += [(PROJECT_ID, e) for e in decoded]
            stored += sum(1 for e in decoded if e.kind == "observation")
        prepared = prepare_events(events, self.models, self.engine.dialect)
        wall, cpu = time.perf_counter(), time.thread_time()
        before = sum(self.steps.values())
        transaction = self.conn.begin()
        self._timing = True
        try:
            commit_prepared(self.conn, prepared, self.models)
        except BaseException:
            transaction.rollback()
            raise
        finally:
            self._timing = False
        statements_done = time.thread_time()
        statements = sum(self.steps.values()) - before
        transaction.commit()
        done = time.thread_time()
        self._add(COMMIT_STEP, done - statements_done)
        self._add(REST_STEP, statements_done - cpu - statements)
        return time.perf_counter() - wall, done - cpu, stored

    def checkpoint(self) -> int:
        """Copy the log into the database, as the server's checkpointer does; the bytes of log
        it copied.

        The log file keeps its size, as the server's does (``ingest/pipeline.py``): the next
        commit writes the log from its start again, over blocks the file already has. A log
        emptied to nothing (``TRUNCATE``) made the file system allocate the file anew for each
        round, which added 5–6 µs per span to every ``COMMIT`` (fifteenth session in
        bench/README.md). So the log's length comes from the WAL index, as the server reads it;
        should the index not be readable, from the file's size, which can only overstate it.
        """
        held = _wal_backlog_bytes(str(self.shm))
        if held is None:
            held = self.wal.stat().st_size if self.wal.exists() else 0
        self.conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        self.conn.commit()
        return held

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def measure(store: Store, size: int, spans: int, checkpoint_spans: int) -> dict[str, Any]:
    wall = cpu = 0.0
    done = since = logged = commits = 0
    store.take_steps()
    while done < spans:
        w, c, n = store.store(size)
        wall, cpu, done, since, commits = wall + w, cpu + c, done + n, since + n, commits + 1
        if since >= checkpoint_spans:
            logged += store.checkpoint()
            since = 0
    logged += store.checkpoint()
    steps = sorted(store.take_steps().items(), key=lambda item: -item[1])
    return {
        "size": size,
        "commits": commits,
        "spans": done,
        "wall_us_per_span": round(wall / done * 1e6, 1),
        "cpu_us_per_span": round(cpu / done * 1e6, 1),
        "cpu_us_per_span_by_step": {step: round(s / done * 1e6, 1) for step, s in steps},
        "log_kib_per_span": round(logged / done / 1024, 2),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preload", type=int, default=200_000, help="spans stored before measuring")
    p.add_argument("--sizes", default="100,300,1000,3000", help="spans per commit, comma-separated")
    p.add_argument("--spans", type=int, default=30_000, help="spans measured per size and round")
    p.add_argument("--rounds", type=int, default=2, help="times each size takes its turn")
    p.add_argument("--checkpoint-spans", type=int, default=6_000)
    p.add_argument("--traces-per-request", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    args.sizes = positive_numbers(p, "--sizes", args.sizes, int, "whole numbers")
    for name in ("spans", "rounds", "checkpoint_spans", "traces_per_request"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.preload < 0:
        p.error("--preload must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_facts()
    if not args.json:
        print("tracehouse commit cost by size (commit_prepared on SQLite, no server)")
        print_machine(machine)
        print(
            f"params  : {args.preload:,} spans preloaded, sizes {args.sizes}, "
            f"{args.spans:,} spans per size and round, {args.rounds} rounds"
        )
    with tempfile.TemporaryDirectory(prefix="tracehouse-commit-size-") as tmp:
        store = Store(Path(tmp), args.traces_per_request)
        try:
            t0 = time.perf_counter()
            if args.preload:
                measure(store, 1000, args.preload, args.checkpoint_spans)
            preload_s = time.perf_counter() - t0
            rows = []
            for round_no in range(1, args.rounds + 1):
                for size in args.sizes:
                    row = measure(store, size, args.spans, args.checkpoint_spans)
                    row["round"] = round_no
                    rows.append(row)
                    if not args.json:
                        print(
                            f"  round {round_no}  {size:>6,} spans/commit: "
                            f"wall {row['wall_us_per_span']:6.1f} µs  "
                            f"CPU {row['cpu_us_per_span']:6.1f} µs  "
                            f"log {row['log_kib_per_span']:5.1f} KiB  per span"
                        )
                        by_step = ", ".join(
                            f"{step} {us:.1f}"
                            for step, us in row["cpu_us_per_span_by_step"].items()
                        )
                        print(f"{'':24}CPU by step (µs per span): {by_step}")
            db_bytes = os.path.getsize(Path(tmp) / "tracehouse.db")
        finally:
            store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine,
                    "preload_spans": args.preload,
                    "preload_s": round(preload_s, 1),
                    "database_bytes": db_bytes,
                    "rows": rows,
                },
                indent=2,
            )
        )
    else:
        print(f"preload took {preload_s:.1f} s; database {db_bytes / 2**20:,.1f} MiB at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
