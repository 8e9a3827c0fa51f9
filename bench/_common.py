"""Pieces the ingestion benchmarks share: the server subprocess, resource sampling, load pacing,
machine facts and the figures every benchmark prints.

Imported by the scripts beside it (``bench/ingest_*.py`` put this folder on ``sys.path`` when run
as ``python bench/<script>.py``).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
ORG_ID = "bench-org"
PROJECT_ID = "bench-project"
PUBLIC_KEY = "pk-lf-bench"
SECRET_KEY = "sk-lf-bench"
SEED_KEYS_FILE = "bench-keys.json"  # written by bench/seed.py into a SQLite data dir
RSS_SAMPLE_S = 0.5
MIB = 1024 * 1024

# --------------------------------------------------------------------------------------------
# Payload text
# --------------------------------------------------------------------------------------------

_WORD_TEXT = (
    "the a model answer question context document retrieval latency token user system "
    "assistant invoice refund policy customer order shipping account password reset billing "
    "summary translate german english python error stack trace database index query cache "
    "vector embedding chunk score relevance prompt template version label production staging "
    "please could you explain why how when where which because therefore however"
)
_WORDS = tuple(_WORD_TEXT.split())


def prose(rng: random.Random, n_chars: int) -> str:
    """A sentence of ``n_chars`` characters made of common words."""
    words: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    text = " ".join(words)[:n_chars]
    return text[0].upper() + text[1:] + "."


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


def basic_auth(public_key: str, secret_key: str) -> str:
    return "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()


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


def start_server(
    database_url: str | None,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """``tracehouse serve`` with the bench project and keys, in a fresh temp data dir.

    With ``data_dir`` (an already seeded store, see ``bench/seed.py``) the server uses that
    folder as it is: no init variables, and only the temp dir with the log is removed at the end.
    ``env``: extra environment variables for the server, applied last (e.g. ``REDIS_URL``,
    ``TRACEHOUSE_WORKERS``).
    """
    workdir = Path(tempfile.mkdtemp(prefix="tracehouse-bench-"))
    port = free_port()
    server_env = dict(os.environ)
    server_env.pop("DATABASE_URL", None)
    server_env.update(
        TRACEHOUSE_DATA_DIR=str(data_dir or workdir / "data"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), server_env.get("PYTHONPATH")) if p),
    )
    if data_dir is None:
        server_env.update(
            LANGFUSE_INIT_ORG_ID=ORG_ID,
            LANGFUSE_INIT_PROJECT_ID=PROJECT_ID,
            LANGFUSE_INIT_PROJECT_PUBLIC_KEY=PUBLIC_KEY,
            LANGFUSE_INIT_PROJECT_SECRET_KEY=SECRET_KEY,
        )
    if database_url:
        server_env["DATABASE_URL"] = database_url
    if env:
        server_env.update(env)
    cmd = [sys.executable, "-m", "tracehouse", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return launch(cmd, port, workdir, cwd=REPO_ROOT, env=server_env)


def launch(cmd: list[str], port: int, workdir: Path, *, cwd: Path, env: dict[str, str]) -> Server:
    """Start a server command in its own session, its output in ``workdir/server.log``."""
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(f"http://127.0.0.1:{port}", proc, workdir, log_path)


def wait_ready(
    server: Server, timeout_s: float, path: str = "/api/public/health", every_s: float = 0.1
) -> None:
    """Poll ``path`` until it answers 200 (fails if the server exits or the time runs out)."""
    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {server.proc.returncode}")
            try:
                r = client.get(server.base_url + path)
                if r.status_code == 200:
                    server.ready_s = time.perf_counter() - t0
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(every_s)
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


def add_server_args(p: argparse.ArgumentParser, *, load: bool = True) -> None:
    """Options every benchmark has: the store, an external server, output, timeouts.

    ``load``: the options of benchmarks that send data (warm-up, payload seed, data check).
    """
    if load:
        p.add_argument(
            "--warmup", type=float, default=2.0, help="seconds excluded from the figures"
        )
    p.add_argument("--database-url", default=None, help="passed to the server as DATABASE_URL")
    p.add_argument("--json", action="store_true", help="also print one JSON line with all figures")
    if load:
        p.add_argument("--seed", type=int, default=1, help="seed of the payload template pool")
    p.add_argument("--startup-timeout", type=float, default=30.0, help="seconds to wait for health")
    if load:
        p.add_argument(
            "--verify-timeout",
            type=float,
            default=30.0,
            help="seconds to wait for traces to show up",
        )
    p.add_argument("--url", default=None, help="use a running server instead of starting one")
    p.add_argument("--public-key", default=PUBLIC_KEY, help="with --url")
    p.add_argument("--secret-key", default=SECRET_KEY, help="with --url")
    p.add_argument("--server-pid", type=int, default=None, help="with --url: pid for RSS/CPU")


def seeded_keys(data_dir: Path, project_id: str = PROJECT_ID) -> tuple[str, str] | None:
    """The key pair ``bench/seed.py`` created for ``project_id`` in ``data_dir``, if any."""
    path = data_dir / SEED_KEYS_FILE
    if not path.exists():
        return None
    entry = json.loads(path.read_text()).get(project_id)
    return (entry["public_key"], entry["secret_key"]) if entry else None


def store_label(args: argparse.Namespace) -> str:
    if args.url:
        return f"external server {args.url}"
    if args.database_url:
        return f"DATABASE_URL={mask_url(args.database_url)}"
    return "SQLite in a fresh temp dir"


def run_against_server(
    args: argparse.Namespace,
    measure: Callable[[Server, str, int | None], int],
    data_dir: Path | None = None,
) -> int:
    """Start a server (or use ``--url``), call ``measure(server, auth, pid)``, then stop it.

    ``data_dir``: serve that seeded folder, authenticating with ``--public-key/--secret-key``.
    """
    url = args.url.rstrip("/") if args.url else None
    server = Server(url) if url else start_server(args.database_url, data_dir)
    if args.url or data_dir is not None:
        auth = basic_auth(args.public_key, args.secret_key)
    else:
        auth = basic_auth(PUBLIC_KEY, SECRET_KEY)
    server_pid = args.server_pid if args.url else server.pid
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
        return measure(server, auth, server_pid)
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    finally:
        if not args.url:
            how = stop_server(server)
            print(f"server {how}; temp dir removed")


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


class ResourceMonitor:
    """Server RSS (idle, sampled peak, final) and server/client CPU over the measured window."""

    def __init__(self, server_pid: int | None) -> None:
        self.pid = server_pid
        self._stop = asyncio.Event()
        self._sampler = RssSampler(server_pid) if server_pid else None
        self._task: asyncio.Task[None] | None = None
        self.rss_idle = 0
        self._cpu_start: tuple[float, float] | None = None

    async def start(self) -> None:
        if self._sampler is not None:
            self._task = asyncio.create_task(self._sampler.run(self._stop))
        await asyncio.sleep(0)
        self.rss_idle = rss_bytes(self.pid) if self.pid else 0

    def mark_window_start(self) -> None:
        """Called when the warm-up ends; later calls do nothing."""
        if self._cpu_start is None:
            server = cpu_seconds(self.pid) if self.pid else 0.0
            self._cpu_start = (client_cpu_seconds(), server)

    async def mark_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.mark_window_start()

    def cpu(self, elapsed_s: float) -> dict[str, Any]:
        self.mark_window_start()
        assert self._cpu_start is not None
        client = client_cpu_seconds() - self._cpu_start[0]
        server = (cpu_seconds(self.pid) - self._cpu_start[1]) if self.pid else None
        return {
            "client": round(client, 2),
            "server": round(server, 2) if server is not None else None,
            "client_pct_of_core": round(100 * client / elapsed_s, 1),
            "server_pct_of_core": round(100 * server / elapsed_s, 1)
            if server is not None
            else None,
        }

    async def stop(self) -> dict[str, Any] | None:
        self._stop.set()
        if self._task is not None:
            await self._task
        if not self.pid:
            return None
        final = rss_bytes(self.pid)
        samples = self._sampler.samples if self._sampler else []
        return {
            "idle": mib(self.rss_idle),
            "peak": mib(max(samples)) if samples else None,
            "final": mib(final),
            "samples": len(samples),
        }


# --------------------------------------------------------------------------------------------
# Load pacing and figures
# --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    warm_until: float
    stop_at: float | None  # time-based end (None with a count budget)
    budget: int | None  # items to send in the measured phase (instead of a duration)
    reserved: int = 0

    def may_send(self, now: float, n_items: int) -> bool:
        if self.stop_at is not None:
            return now < self.stop_at
        if now < self.warm_until:
            return True
        assert self.budget is not None
        if self.reserved >= self.budget:
            return False
        self.reserved += n_items
        return True


@dataclass
class Tally:
    """What one phase (warm-up or measured) sent and got back; items are events or spans."""

    requests: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    # When the request of each of ``latencies_ms`` started (``time.perf_counter``), where a
    # loop records it (``latency_by_slice``).
    started: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    last_done: float = 0.0


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, int(round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_figures(latencies_ms: list[float]) -> dict[str, float | None]:
    lat = sorted(latencies_ms)
    return {
        "p50": rnd(percentile(lat, 50)),
        "p95": rnd(percentile(lat, 95)),
        "p99": rnd(percentile(lat, 99)),
        "max": rnd(lat[-1] if lat else None),
        "mean": rnd(sum(lat) / len(lat) if lat else None),
    }


def latency_by_slice(
    started: list[float], latencies_ms: list[float], origin: float, slice_s: float
) -> list[dict[str, Any]]:
    """p50 and p99 of the requests that started in each ``slice_s`` seconds from ``origin``.

    Reply times move over a run as the store grows (its indexes outgrow what one commit
    touches), so a p99 over the whole window depends on how long the run was; the slices show
    how it moved.
    """
    if slice_s <= 0:
        raise ValueError("slice_s must be positive")
    if len(started) != len(latencies_ms):
        raise ValueError("one start per latency")
    slices: dict[int, list[float]] = collections.defaultdict(list)
    for t, ms in zip(started, latencies_ms, strict=True):
        slices[max(0, int((t - origin) // slice_s))].append(ms)
    out = []
    for k in sorted(slices):
        lat = sorted(slices[k])
        out.append(
            {
                "from_s": rnd(k * slice_s),
                "to_s": rnd((k + 1) * slice_s),
                "requests": len(lat),
                "p50": rnd(percentile(lat, 50)),
                "p99": rnd(percentile(lat, 99)),
            }
        )
    return out


def format_latency_slices(slices: list[dict[str, Any]]) -> str:
    """``0-5 s 19/140, 5-10 s 37/134`` (p50/p99 ms of each slice)."""
    return ", ".join(
        f"{fmt(s['from_s'], 'g')}-{fmt(s['to_s'], 'g')} s {fmt(s['p50'], '.0f')}/"
        f"{fmt(s['p99'], '.0f')}"
        for s in slices
    )


async def count_traces(client: httpx.AsyncClient) -> int | None:
    try:
        r = await client.get("/api/public/traces", params={"limit": 1})
        if r.status_code != 200:
            return None
        return int(r.json()["meta"]["totalItems"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None


async def wait_for_traces(
    client: httpx.AsyncClient, before: int | None, expected: int, timeout_s: float
) -> dict[str, Any]:
    """Data check: poll the trace count until ``expected`` new traces show (or time runs out)."""
    started = time.perf_counter()
    after = await count_traces(client)
    while (
        after is not None
        and before is not None
        and after - before < expected
        and time.perf_counter() - started < timeout_s
    ):
        await asyncio.sleep(0.25)
        after = await count_traces(client)
    new = after - before if after is not None and before is not None else None
    return {
        "server_total_items_before": before,
        "server_total_items_after": after,
        "server_new_traces": new,
        "match": new == expected if new is not None else None,
        "wait_s": round(time.perf_counter() - started, 2),
    }


def rnd(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def mib(value: int | None) -> float | None:
    return None if not value else round(value / MIB, 1)


def positive_numbers(
    parser: argparse.ArgumentParser,
    option: str,
    text: str,
    kind: Callable[[str], float] = float,
    what: str = "numbers",
) -> list[Any]:
    """The comma-separated value ``text`` of ``option`` as positive numbers of ``kind``; a
    usage error naming the option otherwise."""
    try:
        numbers = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"{option} must be {what} separated by commas")
    if not numbers or min(numbers) <= 0:
        parser.error(f"{option} must be positive")
    return numbers


def fmt(v: Any, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


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
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "tracehouse": version,
        "hot_path": hot_path_build(),
    }


def hot_path_build() -> str | None:
    """How the server this bench starts runs its ingestion hot path: compiled or pure Python.

    Asked of the repository the bench belongs to, as the server imports it (not of whatever
    ``tracehouse`` this process would import). None when it cannot say (an older checkout).
    """
    code = "from tracehouse.compiled import build_kind; print(build_kind())"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def print_machine(machine: dict[str, Any]) -> None:
    print(
        f"machine : {machine['cores']} cores ({machine['cores_usable']} usable), "
        f"{machine['ram_gib']} GiB RAM, load {fmt(machine['load_avg_1m'], '.2f')} (1 min), "
        f"Python {machine['python']}, {machine['platform']}"
    )
    print(
        f"build   : tracehouse {machine['tracehouse'] or '?'}, "
        f"hot path {machine['hot_path'] or 'unknown'} (see tracehouse/compiled.py)"
    )


def print_latency_and_resources(fig: dict[str, Any]) -> None:
    lat = fig["latency_ms"]
    cpu = fig["cpu_s"]
    rss = fig["server_rss_mib"]
    print(
        f"  latency ms          p50 {fmt(lat['p50'])}  p95 {fmt(lat['p95'])}  "
        f"p99 {fmt(lat['p99'])}  max {fmt(lat['max'])}  mean {fmt(lat['mean'])}"
    )
    print(f"  HTTP statuses       {fig['http_statuses']}")
    if rss:
        print(
            f"  server RSS MiB      idle {fmt(rss['idle'])}  peak {fmt(rss['peak'])}  "
            f"final {fmt(rss['final'])}  ({rss['samples']} samples)"
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


def print_errors(errors: dict[str, int]) -> None:
    if errors:
        print("  errors (most frequent first)")
        for key, count in errors.items():
            print(f"    {count:>8,}  {key}")


class LoadConnectionError(Exception):
    """The connection failed or the reply was not HTTP/1.1 the loop can read."""


class LoadConnection:
    """One keep-alive HTTP/1.1 connection for the load loops, with as little client CPU as may be.

    The loops share the machine's cores with the server they measure, so what the client spends
    the server cannot use. httpx spent about 1.1 ms of CPU per 160 KB request (16 % of a core at
    13,000 spans/s, 100 spans per request); this writes the request head and body as they are and
    reads the reply by its ``Content-Length`` (or chunks), for a small fraction of that. Anything
    it cannot read raises ``LoadConnectionError``; the next request connects anew.
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout_s: float = 60.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the load loops speak plain http, not {base_url!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        fixed = {"Host": url.netloc, **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the reply."""
        try:
            return await asyncio.wait_for(self._exchange(path, body), self.timeout_s)
        except (
            OSError,
            EOFError,
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            await self.close()
            raise LoadConnectionError(f"{type(exc).__name__}: {exc}") from exc
        except LoadConnectionError:
            await self.close()
            raise

    async def _exchange(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n{self._fixed}Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("latin-1"))
        writer.write(body)
        await writer.drain()
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        if not version.startswith("HTTP/1."):
            raise LoadConnectionError(f"not an HTTP/1.x reply: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            payload = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            payload = await self._chunks(reader)
        else:
            raise LoadConnectionError("reply with neither Content-Length nor chunks")
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(status), headers, payload

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def event_loop_runner() -> tuple[Any, str]:
    try:
        import uvloop

        return uvloop.run, "uvloop"
    except ImportError:
        return asyncio.run, "asyncio"
