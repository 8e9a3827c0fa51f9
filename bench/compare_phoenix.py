"""Side-by-side OTLP ingestion benchmark: tracehouse against Arize Phoenix, in one run.

Starts a fresh tracehouse server (its own temporary data directory, SQLite, the bench keys), then
a fresh Arize Phoenix server (its own temporary ``PHOENIX_WORKING_DIR`` with its default SQLite
database, free HTTP and gRPC ports, telemetry off), one after the other on the same machine, and
drives each with the same load: ``--clients`` concurrent clients posting the binary protobuf
``ExportTraceServiceRequest`` bodies of ``bench/ingest_otlp.py`` (ten-span RAG traces, fresh ids
and times per request) to the server's OTLP/HTTP endpoint (tracehouse
``/api/public/otel/v1/traces``, Phoenix ``/v1/traces``) for ``--duration`` seconds after a
``--warmup``. Prints a side-by-side table of figures; it never asserts anything.

Phoenix is not a dependency of tracehouse: the script creates a separate virtualenv in
``.cache/phoenix-venv`` (``python -m venv`` + ``pip install arize-phoenix``, unpinned) on its first
run and reuses it afterwards; ``--phoenix-python`` uses an existing install instead. The installed
Phoenix version is printed with the figures. Delete ``.cache/phoenix-venv`` to upgrade.

Run from the repository root::

    .venv/bin/python bench/compare_phoenix.py                     # 8 clients, 20 s each
    .venv/bin/python bench/compare_phoenix.py --clients 4 --traces-per-request 10 --duration 60
    .venv/bin/python bench/compare_phoenix.py --duration 5 --json
    .venv/bin/python bench/compare_phoenix.py --workers 1,2       # tracehouse with 1 and 2 processes
    .venv/bin/python bench/compare_phoenix.py --skip-tracehouse   # Phoenix only
    .venv/bin/python bench/compare_phoenix.py --phoenix-python /opt/phoenix/bin/python

Figures, per server:

- spans/s accepted: spans of the measured window answered 200, minus the
  ``partial_success.rejected_spans`` of the reply (Phoenix answers 503 when its span queue is full;
  those count as rejected and the client backs off for a second, as for tracehouse).
- spans stored: what the server has actually written, counted with ``SELECT count(*)`` on its own
  SQLite file through a read-only connection (tracehouse: the ``observations`` table of
  ``tracehouse.db``, one row per span; Phoenix: the ``spans`` table of ``phoenix.db``), sampled
  every 0.5 s under load and afterwards (every 0.1 s in the first second after the load) until
  every accepted span (warm-up included) is stored, the count stops growing for ``--settle``
  seconds, or ``--verify-timeout`` runs out. Phoenix answers before it stores: its spans wait in
  an in-memory queue (up to 20,000 by default) that is written in transactions of at most 100
  spans, so expect it to keep storing for a while after the load ends.
  "stored /s" is the spans stored from the end of the warm-up until the count reached its final
  value, over that time; "stored after last reply" is the time from the last reply until then.
- request latency p50/p99 (measured window), server RSS (process + children: idle after start-up,
  peak sampled every 0.5 s under load and while storing), server CPU seconds (measured window, and
  from the start of the load until everything was stored), disk: the size of the data directory
  (database, WAL and whatever else the server keeps there) after storing, and its growth per stored
  span, and the wire bytes per span (protobuf body size / spans per request, no HTTP headers).

Both servers see the same bodies (same templates, same seed); each runs alone, the first one is
stopped before the second starts. ``--workers 1,2`` runs tracehouse once per process count
(``serve --workers``, a column each); Phoenix serves from one process. Figures on a busy machine
are noisy; compare runs made back to back, and look at the load average printed in the header.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    MIB,
    PUBLIC_KEY,
    REPO_ROOT,
    SECRET_KEY,
    Plan,
    ResourceMonitor,
    Server,
    Tally,
    basic_auth,
    cpu_seconds,
    event_loop_runner,
    fmt,
    free_port,
    latency_figures,
    launch,
    machine_facts,
    positive_numbers,
    print_errors,
    print_machine,
    rnd,
    start_server,
    stop_server,
    wait_ready,
)
from ingest_otlp import OTLP_PATH, SPANS_PER_TRACE, BodyFactory, Totals, client_loop
from ingest_otlp import parse_args as ingest_otlp_args

PHOENIX_VENV = REPO_ROOT / ".cache" / "phoenix-venv"
PHOENIX_PACKAGE = "arize-phoenix"
PHOENIX_OTLP_PATH = "/v1/traces"
SAMPLE_UNDER_LOAD_S = 0.5
SAMPLE_AFTER_LOAD_S = 0.1  # for the first second after the load, then SAMPLE_UNDER_LOAD_S

# --------------------------------------------------------------------------------------------
# Phoenix install and process
# --------------------------------------------------------------------------------------------


def installed_version(python: Path, package: str) -> str | None:
    """``package``'s version in the environment of ``python``, or None if it is not there."""
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def phoenix_python(args: argparse.Namespace) -> tuple[Path, str]:
    """The interpreter to run Phoenix with and Phoenix's version; installs it on first use."""
    if args.phoenix_python:
        python = Path(args.phoenix_python)
        version = installed_version(python, PHOENIX_PACKAGE)
        if version is None:
            raise RuntimeError(f"{python} cannot import {PHOENIX_PACKAGE}")
        return python, version
    python = PHOENIX_VENV / "bin" / "python"
    version = installed_version(python, PHOENIX_PACKAGE)
    if version is not None:
        return python, version
    rel = PHOENIX_VENV.relative_to(REPO_ROOT)
    print(f"phoenix : installing {PHOENIX_PACKAGE} into {rel} (first run only) ...", flush=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PHOENIX_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, PHOENIX_PACKAGE], check=True)
    version = installed_version(python, PHOENIX_PACKAGE)
    if version is None:
        raise RuntimeError(f"{PHOENIX_PACKAGE} did not install into {PHOENIX_VENV}")
    print(
        f"phoenix : installed {PHOENIX_PACKAGE} {version} in {time.perf_counter() - t:.0f} s, "
        f"venv {dir_bytes(PHOENIX_VENV) / MIB:,.0f} MiB"
    )
    return python, version


def start_phoenix(python: Path) -> Server:
    """``python -m phoenix.server.main serve`` in a fresh temp working dir, on free ports."""
    workdir = Path(tempfile.mkdtemp(prefix="phoenix-bench-"))
    (workdir / "data").mkdir()
    port = free_port()
    grpc_port = free_port()
    while grpc_port == port:
        grpc_port = free_port()
    # Nothing of the caller's Phoenix/OTel configuration (database URL, auth, ...) leaks in.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PHOENIX_", "OTEL_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        PHOENIX_WORKING_DIR=str(workdir / "data"),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    cmd = [str(python), "-m", "phoenix.server.main", "serve"]
    return launch(cmd, port, workdir, cwd=workdir, env=env)


# --------------------------------------------------------------------------------------------
# Stored-span counting
# --------------------------------------------------------------------------------------------


class RowCounter:
    """``SELECT count(*)`` on a server's SQLite file, read-only, from a worker thread."""

    def __init__(self, db_path: Path, table: str) -> None:
        self.db_path = db_path
        self.sql = f"SELECT count(*) FROM {table}"
        self._conn: sqlite3.Connection | None = None
        self.last_error: str | None = None

    def _count(self) -> int | None:
        try:
            if self._conn is None:
                uri = f"file:{self.db_path}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=5.0, check_same_thread=False)
            return int(self._conn.execute(self.sql).fetchone()[0])
        except sqlite3.Error as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None

    async def count(self) -> int | None:
        return await asyncio.to_thread(self._count)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def sample_counts(
    counter: RowCounter, samples: list[tuple[float, int]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        n = await counter.count()
        if n is not None:
            samples.append((time.perf_counter(), n))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_UNDER_LOAD_S)


# --------------------------------------------------------------------------------------------
# One server under load
# --------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    version: str | None
    server: Server
    path: str  # OTLP endpoint
    auth: str  # Authorization header value, "" for none
    counter: RowCounter
    data_dir: Path


async def run_side(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    factory = BodyFactory(args.traces_per_request, seed=args.seed)
    wire_per_span = sum(t.size for t in factory.pool) / len(factory.pool)
    wire_per_span /= factory.spans_per_request
    pid = target.server.pid
    counter = target.counter
    stored_before = await counter.count() or 0
    disk_idle = dir_bytes(target.data_dir)
    monitor = ResourceMonitor(pid)
    await monitor.start()
    cpu_load_start = cpu_seconds(pid) if pid else 0.0

    t0 = time.perf_counter()
    plan = Plan(warm_until=t0 + args.warmup, stop_at=t0 + args.warmup + args.duration, budget=None)
    measured, warm, totals = Tally(), Tally(), Totals()
    samples: list[tuple[float, int]] = [(t0, stored_before)]
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_counts(counter, samples, stop_sampling))
    marker = asyncio.create_task(monitor.mark_after(args.warmup))
    clients = [
        client_loop(
            target.server.base_url,
            target.auth,
            factory,
            plan,
            measured,
            warm,
            totals,
            False,
            target.path,
        )
        for _ in range(args.clients)
    ]
    await asyncio.gather(*clients)
    marker.cancel()  # a run shorter than the warm-up measures from its end
    load_end = max(measured.last_done, warm.last_done, t0)
    elapsed = max(measured.last_done - plan.warm_until, 1e-9)
    cpu = monitor.cpu(elapsed)
    stop_sampling.set()
    await sampler

    # Wait for the server to store what it accepted.
    expected = measured.accepted + warm.accepted
    last_change = time.perf_counter()
    while True:
        n = await counter.count()
        now = time.perf_counter()
        if n is not None:
            if n != samples[-1][1]:
                last_change = now
            samples.append((now, n))
            if n - stored_before >= expected:
                break
        if now - last_change >= args.settle or now - load_end >= args.verify_timeout:
            break
        # Fine-grained right after the load (a quick drain), sparing the server afterwards.
        await asyncio.sleep(SAMPLE_AFTER_LOAD_S if now - load_end < 1.0 else SAMPLE_UNDER_LOAD_S)
    cpu_total = (cpu_seconds(pid) - cpu_load_start) if pid else None
    rss = await monitor.stop()
    disk = dir_bytes(target.data_dir)

    final = samples[-1][1]
    stored = final - stored_before
    t_final = next(t for t, n in samples if n == final)  # when the count reached its final value
    base = next(((t, n) for t, n in samples if t >= plan.warm_until), samples[-1])
    stored_per_s = (final - base[1]) / (t_final - base[0]) if t_final > base[0] else None
    all_stored = stored >= expected
    lat = latency_figures(measured.latencies_ms)
    return {
        "server": target.name,
        "version": target.version,
        "ready_s": round(target.server.ready_s, 2),
        "measured_s": round(elapsed, 3),
        "requests": measured.requests,
        "spans_sent": measured.sent,
        "spans_accepted": measured.accepted,
        "spans_rejected": measured.rejected,
        "spans_per_s_accepted": round(measured.accepted / elapsed, 1),
        "latency_ms": lat,
        "http_statuses": dict(measured.statuses),
        "errors": dict(measured.errors.most_common(10)),
        "warmup": {
            "requests": warm.requests,
            "spans_accepted": warm.accepted,
            "spans_rejected": warm.rejected,
            "errors": dict(warm.errors.most_common(5)),
        },
        "stored": {
            "how": f"{counter.sql} on {counter.db_path.name}",
            "expected": expected,  # accepted spans incl. warm-up
            "spans": stored,
            "all_stored": all_stored,
            "spans_per_s": rnd(stored_per_s),
            "window_s": round(t_final - base[0], 2),
            # from the last reply until the count reached its final value (0 if it was already)
            "after_last_reply_s": round(max(0.0, t_final - load_end), 2),
            "count_error": counter.last_error,
        },
        "server_rss_mib": rss,
        "cpu_s": {
            **cpu,
            "server_load_and_storing": round(cpu_total, 2) if cpu_total is not None else None,
            "server_ms_per_1k_spans_stored": round(1e6 * cpu_total / stored, 1)
            if cpu_total is not None and stored
            else None,
        },
        "disk": {
            "idle_bytes": disk_idle,
            "after_bytes": disk,
            "bytes_per_stored_span": round((disk - disk_idle) / stored, 1) if stored else None,
        },
        "wire_bytes_per_span": round(wire_per_span, 1),
    }


def run_server(
    args: argparse.Namespace,
    runner: Callable[[Any], Any],
    name: str,
    start: Callable[[], tuple[Server, Callable[[Server], Target]]],
) -> dict[str, Any] | None:
    """Start a server, measure it, stop it. None if it did not come up."""
    print(f"\n{name}: starting ...", flush=True)
    server, wait_and_target = start()
    target: Target | None = None
    try:
        try:
            target = wait_and_target(server)
        except RuntimeError as exc:
            print(f"{name}: did not come up: {exc}")
            tail = server.log_tail()
            if tail:
                print("--- server log (tail) ---\n" + tail)
            return None
        print(
            f"{name}: {server.base_url}{target.path} (pid {server.pid}), ready after "
            f"{server.ready_s:.2f} s; {args.warmup:g} s warm-up + {args.duration:g} s load ...",
            flush=True,
        )
        figures = runner(run_side(args, target))
        st = figures["stored"]
        print(
            f"{name}: {figures['spans_per_s_accepted']:,.1f} spans/s accepted, "
            f"{st['spans']:,} of {st['expected']:,} accepted spans stored"
        )
        return figures
    finally:
        if target is not None:
            target.counter.close()
        how = stop_server(server)
        print(f"{name}: server {how}; temp dir removed")


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _rows(fig: dict[str, Any]) -> list[tuple[str, str]]:
    st, lat, rss = fig["stored"], fig["latency_ms"], fig["server_rss_mib"] or {}
    cpu, disk = fig["cpu_s"], fig["disk"]
    stored = f"{st['spans']:,} / {st['expected']:,}" + ("" if st["all_stored"] else " (!)")
    return [
        ("version", fig["version"] or "n/a"),
        ("ready after start, s", fmt(fig["ready_s"], ".2f")),
        ("requests (measured)", f"{fig['requests']:,}"),
        ("spans/s accepted", fmt(fig["spans_per_s_accepted"], ",.1f")),
        ("spans rejected", f"{fig['spans_rejected']:,}"),
        ("spans stored / accepted (all)", stored),
        ("spans/s stored", fmt(st["spans_per_s"], ",.1f")),
        ("stored after last reply, s", fmt(st["after_last_reply_s"], ".2f")),
        ("request p50 ms", fmt(lat["p50"])),
        ("request p99 ms", fmt(lat["p99"])),
        ("server RSS idle MiB", fmt(rss.get("idle"))),
        ("server RSS peak MiB", fmt(rss.get("peak"))),
        ("server CPU s (window)", fmt(cpu["server"], ".2f")),
        ("server CPU s (load+storing)", fmt(cpu["server_load_and_storing"], ".2f")),
        ("server CPU ms / 1k spans", fmt(cpu["server_ms_per_1k_spans_stored"], ",.1f")),
        ("client CPU s (window)", fmt(cpu["client"], ".2f")),
        ("disk after MiB", fmt(disk["after_bytes"] / MIB, ",.1f")),
        ("disk growth B / stored span", fmt(disk["bytes_per_stored_span"], ",.0f")),
        ("wire B / span (protobuf)", fmt(fig["wire_bytes_per_span"], ",.0f")),
        ("HTTP statuses", " ".join(f"{k}:{v}" for k, v in fig["http_statuses"].items()) or "-"),
    ]


def print_table(results: dict[str, dict[str, Any] | None]) -> None:
    names = list(results)
    columns = {
        name: dict(_rows(fig)) if fig else {"version": "did not run"}
        for name, fig in results.items()
    }
    labels = [label for label, _ in _rows(next(f for f in results.values() if f))]
    width = max(len(label) for label in labels) + 2
    col = max(16, *(len(v) + 2 for c in columns.values() for v in c.values()))
    print()
    print("figures (measured window after warm-up; stored counts include the warm-up)")
    print(" " * width + "".join(f"{n:>{col}}" for n in names))
    for label in labels:
        print(f"{label:<{width}}" + "".join(f"{columns[n].get(label, '-'):>{col}}" for n in names))
    if any(fig and not fig["stored"]["all_stored"] for fig in results.values()):
        print(
            "(!) not every accepted span was stored when the wait ended (--settle/--verify-timeout)"
        )
    for name, fig in results.items():
        if fig and (fig["errors"] or fig["warmup"]["errors"] or fig["stored"]["count_error"]):
            print(f"{name}:")
            print_errors(fig["errors"] or fig["warmup"]["errors"])
            if fig["stored"]["count_error"]:
                print(f"  last count error    {fig['stored']['count_error']}")


def print_header(args: argparse.Namespace, machine: dict[str, Any], loop_name: str) -> None:
    spans = args.traces_per_request * SPANS_PER_TRACE
    print("OTLP ingestion, tracehouse vs Arize Phoenix (protobuf over HTTP, same load, one run)")
    print_machine(machine)
    print(
        f"params  : {args.clients} clients x {args.traces_per_request} traces/request "
        f"({spans} spans/request), {args.duration:g} s after {args.warmup:g} s warm-up per server, "
        f"both on SQLite in fresh temp dirs, client loop: {loop_name}"
    )
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare tracehouse's OTLP/HTTP ingestion with Arize Phoenix's, same load, "
        "one run. Prints figures; never asserts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = ingest_otlp_args([])
    p.add_argument(
        "--traces-per-request",
        type=int,
        default=defaults.traces_per_request,
        help="traces per request (x10 spans)",
    )
    p.add_argument(
        "--clients", type=int, default=8, help="concurrent clients (one connection each)"
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per server")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds excluded from the figures")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the payload pool")
    p.add_argument(
        "--workers",
        default="1",
        help="tracehouse API processes (serve --workers), comma-separated for one tracehouse "
        "run each (e.g. 1,2)",
    )
    p.add_argument("--skip-tracehouse", action="store_true", help="measure Phoenix only")
    p.add_argument("--skip-phoenix", action="store_true", help="measure tracehouse only")
    p.add_argument(
        "--phoenix-python",
        default=None,
        help="Python of an existing arize-phoenix install (default: the cached venv in "
        f"{PHOENIX_VENV.relative_to(REPO_ROOT)}, created on first use)",
    )
    p.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds to wait for each server"
    )
    p.add_argument(
        "--verify-timeout",
        type=float,
        default=300.0,
        help="most seconds to wait after the load for accepted spans to be stored",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="stop waiting for storage once the stored count has not grown for this long",
    )
    p.add_argument("--json", action="store_true", help="also print one JSON line with all figures")
    args = p.parse_args(argv)
    if args.traces_per_request < 1 or args.clients < 1:
        p.error("--traces-per-request and --clients must be at least 1")
    if args.skip_tracehouse and args.skip_phoenix:
        p.error("nothing to do with both --skip-tracehouse and --skip-phoenix")
    args.workers = positive_numbers(p, "--workers", args.workers, int, "whole numbers")
    return args


def tracehouse_name(workers: int) -> str:
    """The column of a tracehouse run: its processes, when more than one."""
    return "tracehouse" if workers == 1 else f"tracehouse x{workers}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_facts()
    runner, loop_name = event_loop_runner()
    print_header(args, machine, loop_name)

    phoenix: tuple[Path, str] | None = None
    if not args.skip_phoenix:
        try:
            phoenix = phoenix_python(args)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"phoenix : not available: {exc}")
            return 1
        print(f"phoenix : {PHOENIX_PACKAGE} {phoenix[1]} ({phoenix[0]})")

    def tracehouse_start(workers: int) -> tuple[Server, Callable[[Server], Target]]:
        env = {"TRACEHOUSE_WORKERS": str(workers)} if workers > 1 else None
        server = start_server(None, env=env)

        def ready(s: Server) -> Target:
            wait_ready(s, args.startup_timeout)
            assert s.workdir is not None
            data = s.workdir / "data"
            counter = RowCounter(data / "tracehouse.db", "observations")
            auth = basic_auth(PUBLIC_KEY, SECRET_KEY)
            return Target("tracehouse", machine["tracehouse"], s, OTLP_PATH, auth, counter, data)

        return server, ready

    def phoenix_start() -> tuple[Server, Callable[[Server], Target]]:
        assert phoenix is not None
        server = start_phoenix(phoenix[0])

        def ready(s: Server) -> Target:
            wait_ready(s, args.startup_timeout, path="/readyz", every_s=0.2)  # app + database
            assert s.workdir is not None
            data = s.workdir / "data"
            counter = RowCounter(data / "phoenix.db", "spans")
            return Target("phoenix", phoenix[1], s, PHOENIX_OTLP_PATH, "", counter, data)

        return server, ready

    results: dict[str, dict[str, Any] | None] = {}
    try:
        if not args.skip_tracehouse:
            for workers in args.workers:
                name = tracehouse_name(workers)
                start = functools.partial(tracehouse_start, workers)
                results[name] = run_server(args, runner, name, start)
        if not args.skip_phoenix:
            results["phoenix"] = run_server(args, runner, "phoenix", phoenix_start)
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130

    if any(results.values()):
        print_table(results)
    if args.json:
        print(
            json.dumps(
                {
                    "bench": "compare_phoenix",
                    "machine": machine,
                    "params": {
                        "traces_per_request": args.traces_per_request,
                        "spans_per_request": args.traces_per_request * SPANS_PER_TRACE,
                        "clients": args.clients,
                        "duration_s": args.duration,
                        "warmup_s": args.warmup,
                        "seed": args.seed,
                        "store": "sqlite",
                        "client_loop": loop_name,
                        "tracehouse_workers": args.workers,
                    },
                    "phoenix_version": phoenix[1] if phoenix else None,
                    "results": results,
                }
            )
        )
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
