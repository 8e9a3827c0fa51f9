"""Accepted means durable: a real `tracehouse serve` killed (SIGKILL) or stopped (SIGTERM) under load.

Concurrent clients post Langfuse ingestion batches and OTLP protobuf exports with unique ids and
record which requests were acknowledged. After a restart on the same store, every acknowledged
event is read back through the API exactly once; the unanswered requests are then re-sent (same
ids, as an SDK retries) and must be stored exactly once, with the same merged records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import server_pg_url
from tests.factories import event, new_id
from tests.serving import free_port, wait_until_healthy

pytestmark = pytest.mark.slow

PUBLIC_KEY, SECRET_KEY = "pk-lf-crash", "sk-lf-crash"
INIT = {
    "LANGFUSE_INIT_ORG_ID": "crash-org",
    "LANGFUSE_INIT_ORG_NAME": "Crash",
    "LANGFUSE_INIT_PROJECT_ID": "crash",
    "LANGFUSE_INIT_PROJECT_NAME": "Crash safety",
    "LANGFUSE_INIT_PROJECT_PUBLIC_KEY": PUBLIC_KEY,
    "LANGFUSE_INIT_PROJECT_SECRET_KEY": SECRET_KEY,
}
SPANS_PER_REQUEST = 6
CLIENTS = 6
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


@dataclass
class Sent:
    """One request as a client built it, what it should store, and what became of it."""

    kind: str  # "ingestion" | "otlp"
    content: bytes | dict[str, Any]
    trace_id: str
    observations: dict[str, dict[str, Any]]  # id -> the fields the merged record must have
    event_ids: list[str] = field(default_factory=list)
    outcome: str = "not sent"  # "acknowledged" | "refused" | "no reply"
    error: str = ""  # the transport error when there was no reply


def ingestion_request() -> Sent:
    """A trace, spans created with their input, then updated with their output (partial events)."""
    trace_id = new_id()
    batch = [event("trace-create", {"id": trace_id, "name": "crash-batch"})]
    observations: dict[str, dict[str, Any]] = {}
    updates = []
    for n in range(SPANS_PER_REQUEST):
        obs_id = new_id()
        name = f"step-{n}"
        batch.append(
            event(
                "span-create",
                {"id": obs_id, "traceId": trace_id, "name": name, "input": {"n": n}},
                at=n,
            )
        )
        updates.append(
            event(
                "span-update",
                {"id": obs_id, "traceId": trace_id, "output": f"done {n}"},
                at=n + 0.5,
            )
        )
        observations[obs_id] = {"name": name, "input": {"n": n}, "output": f"done {n}"}
    batch += updates
    return Sent(
        "ingestion",
        {"batch": batch},
        trace_id,
        observations,
        event_ids=[e["id"] for e in batch],
    )


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def otlp_request() -> Sent:
    """One trace of a root span and children, as an OpenTelemetry exporter sends it."""
    trace_id, root_id = os.urandom(16), os.urandom(8)
    req = ExportTraceServiceRequest()
    scope_spans = req.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = "crash-test"
    observations: dict[str, dict[str, Any]] = {}
    for n in range(SPANS_PER_REQUEST):
        span_id = root_id if n == 0 else os.urandom(8)
        name = f"otel-step-{n}"
        scope_spans.spans.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=b"" if n == 0 else root_id,
                name=name,
                start_time_unix_nano=T0 + n * 1_000_000,
                end_time_unix_nano=T0 + (n + 1) * 1_000_000,
                attributes=[_kv("langfuse.observation.input", f"in {n}")],
            )
        )
        observations[span_id.hex()] = {
            "name": name,
            "input": f"in {n}",
            "parentObservationId": None if n == 0 else root_id.hex(),
        }
    return Sent("otlp", req.SerializeToString(), trace_id.hex(), observations)


def send(client: httpx.Client, sent: Sent) -> None:
    """Post the request and record whether it was acknowledged, refused, or left unanswered."""
    try:
        if sent.kind == "ingestion":
            r = client.post("/api/public/ingestion", json=sent.content)
            ok = (
                r.status_code == 207
                and r.json()["errors"] == []
                and sorted(s["id"] for s in r.json()["successes"]) == sorted(sent.event_ids)
            )
        else:
            r = client.post(
                "/api/public/otel/v1/traces",
                content=sent.content,
                headers={"Content-Type": "application/x-protobuf"},
            )
            ok = (
                r.status_code == 200
                and ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans
                == 0
            )
    except httpx.TransportError as exc:
        sent.outcome, sent.error = "no reply", type(exc).__name__
        return
    sent.outcome = "acknowledged" if ok else "refused"


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=(PUBLIC_KEY, SECRET_KEY), timeout=30)


class Load:
    """CLIENTS threads posting ingestion batches and OTLP exports, alternately, until stopped
    or until their server stops answering."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def acknowledged(self) -> int:
        with self._lock:
            return sum(s.outcome == "acknowledged" for s in self.sent)

    def wait_for_acknowledged(self, count: int) -> None:
        """Wait (data-driven, not timed) until `count` requests were answered with a success."""
        while self.acknowledged() < count:
            assert all(t.is_alive() for t in self._threads)
            time.sleep(0.01)

    def _run(self, n: int) -> None:
        with _client(self.url) as client:
            turn = n
            while not self._stop.is_set():
                sent = ingestion_request() if turn % 2 == 0 else otlp_request()
                turn += 1
                with self._lock:
                    self.sent.append(sent)
                send(client, sent)
                if sent.outcome == "no reply":
                    return  # the server is gone; this client stops, as an exporter would


def _env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "TRACEHOUSE_"))}
    env.pop("DATABASE_URL", None)
    env.update(INIT, TRACEHOUSE_DATA_DIR=str(data_dir))
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@contextmanager
def serving(
    env: dict[str, str], log_path: Path, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real `tracehouse serve` (in its own process group, so that a kill reaches all of its
    processes); killed on the way out if the test left it running."""
    port = free_port()
    cmd = [sys.executable, "-m", "tracehouse", "serve", "--port", str(port)]
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [*cmd, "--workers", str(workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log_path.read_text)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _all(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        r = client.get(path, params={"limit": 1000, "page": page})
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        if page >= r.json()["meta"]["totalPages"]:
            return rows
        page += 1


def stored(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every trace and every observation of the project, read through the public API."""
    with _client(url) as client:
        return _all(client, "/api/public/traces"), _all(client, "/api/public/observations")


def check_stored_exactly_once(url: str, requests: list[Sent]) -> set[str]:
    """Each request's trace and observations are stored once, with the merged fields it sent.

    Returns the trace ids found for `requests`; a request is either stored whole or not at all
    (its events are committed in one transaction).
    """
    traces, observations = stored(url)
    trace_ids = [t["id"] for t in traces]
    obs_ids = [o["id"] for o in observations]
    assert len(trace_ids) == len(set(trace_ids)), "a trace is listed twice"
    assert len(obs_ids) == len(set(obs_ids)), "an observation is listed twice"
    by_id = {o["id"]: o for o in observations}
    found = set()
    for sent in requests:
        present = [i for i in sent.observations if i in by_id]
        if not present:
            assert sent.trace_id not in trace_ids, f"request of {sent.trace_id} is torn"
            continue
        assert len(present) == len(sent.observations), f"request of {sent.trace_id} is torn"
        assert sent.trace_id in trace_ids
        found.add(sent.trace_id)
        for obs_id, expected in sent.observations.items():
            record = by_id[obs_id]
            assert record["traceId"] == sent.trace_id
            for key, value in expected.items():
                assert record[key] == value, (obs_id, key, record[key], value)
    return found


def retry_unanswered(url: str, requests: list[Sent]) -> list[Sent]:
    """Re-send (same ids) whatever got no success reply, as an SDK retries; all must succeed."""
    retried = [s for s in requests if s.outcome != "acknowledged"]
    with _client(url) as client:
        for sent in retried:
            send(client, sent)
            assert sent.outcome == "acknowledged", sent.trace_id
    return retried


def _outcomes(requests: list[Sent], found: set[str]) -> dict[str, int]:
    """How many requests were acknowledged, refused, or unanswered (by error, and whether the
    server had committed them before it went away)."""
    counts: dict[str, int] = {}
    for s in requests:
        key = s.outcome
        if s.outcome == "no reply":
            key += f" ({s.error}, {'committed' if s.trace_id in found else 'not stored'})"
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    yield from server_pg_url()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path, database_url, workers):
    env = _env(tmp_path, database_url)
    log = tmp_path / "server.log"
    with serving(env, log, workers) as (url, proc), Load(url) as load:
        # Kill once a good amount was acknowledged, while the clients keep posting; with
        # several API processes, all of them at once (the whole process group).
        load.wait_for_acknowledged(300)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    requests = load.sent
    acknowledged = [s for s in requests if s.outcome == "acknowledged"]
    assert acknowledged and all(s.outcome != "not sent" for s in requests)

    with serving(env, log) as (url, _):
        found = check_stored_exactly_once(url, requests)
        assert {s.trace_id for s in acknowledged} <= found
        outcomes = _outcomes(requests, found)
        retried = retry_unanswered(url, requests)
        assert retried, "the kill left no request unanswered"
        found = check_stored_exactly_once(url, requests)
        assert found == {s.trace_id for s in requests}
        traces, observations = stored(url)
        assert len(traces) == len(requests)
        assert len(observations) == len(requests) * SPANS_PER_REQUEST
    print(
        f"\nSIGKILL ({database_url and 'postgres' or 'sqlite'}, {workers} processes): "
        f"{len(requests)} requests, {outcomes}, "
        f"{len(acknowledged) * SPANS_PER_REQUEST} acknowledged observations verified, "
        f"{len(retried)} re-sent, {len(observations)} observations stored once"
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_requests_and_exits_cleanly(tmp_path, workers):
    env = _env(tmp_path, None)
    log = tmp_path / "server.log"
    with serving(env, log, workers) as (url, proc):
        with Load(url) as load:
            load.wait_for_acknowledged(50)
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(15)
        assert returncode == 0, log.read_text()
    requests = load.sent
    acknowledged = [s for s in requests if s.outcome == "acknowledged"]

    with serving(env, log) as (url, _):
        found = check_stored_exactly_once(url, requests)
        assert {s.trace_id for s in acknowledged} <= found
        outcomes = _outcomes(requests, found)
        retry_unanswered(url, requests)
        assert check_stored_exactly_once(url, requests) == {s.trace_id for s in requests}
    print(f"\nSIGTERM: {len(requests)} requests, {outcomes}")


def test_processes_sharing_one_sqlite_file_merge_updates_of_the_same_entities(tmp_path):
    """Two API processes, each with its own writer, take turns on one SQLite file: updates of
    the same observations sent over many connections (spread over both processes) all land."""
    env = _env(tmp_path, None)
    trace_id, ids = new_id(), [new_id() for _ in range(30)]
    created = [
        event("trace-create", {"id": trace_id, "name": "shared"}),
        *(event("span-create", {"id": i, "traceId": trace_id, "name": "s"}) for i in ids),
    ]
    fields = ["output", "statusMessage", "version", "level"]
    values = {"output": {"o": 1}, "statusMessage": "m", "version": "v2", "level": "WARNING"}

    def update(field_name: str) -> None:
        with _client(url) as client:
            for obs_id in ids:  # one request per observation: many group commits
                body = {
                    "batch": [event("span-update", {"id": obs_id, field_name: values[field_name]})]
                }
                r = client.post("/api/public/ingestion", json=body)
                assert r.status_code == 207 and not r.json()["errors"], r.text

    with serving(env, tmp_path / "server.log", workers=2) as (url, proc):
        with _client(url) as client:
            r = client.post("/api/public/ingestion", json={"batch": created})
            assert r.status_code == 207 and not r.json()["errors"], r.text
        threads = [threading.Thread(target=update, args=(f,)) for f in fields for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with _client(url) as client:
            observations = {
                o["id"]: o
                for o in _all(client, "/api/public/observations")
                if o["traceId"] == trace_id
            }
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert set(observations) == set(ids)
    for o in observations.values():
        assert {f: o[f] for f in fields} == values, o


def test_api_processes_stop_when_their_parent_is_killed(tmp_path):
    """`serve --workers 2` killed by SIGKILL: the kernel tells its API processes, which stop
    gracefully instead of serving on as orphans."""
    import psutil

    env = _env(tmp_path, None)
    with serving(env, tmp_path / "server.log", workers=2) as (url, proc):
        children = [
            p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(children) == 2
        proc.kill()  # the parent only, not the process group
        proc.wait()
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, [p.pid for p in alive]


needs_cpu_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and at least two usable CPUs",
)


@needs_cpu_affinity
@pytest.mark.parametrize("affinity", ["auto", "off"])
def test_a_single_server_process_keeps_to_one_cpu(tmp_path, affinity):
    """TRACEHOUSE_CPU_AFFINITY=auto: one `serve` process and all its threads keep to one CPU;
    `off` leaves it where the operating system puts it."""
    import psutil

    env = {**_env(tmp_path, None), "TRACEHOUSE_CPU_AFFINITY": affinity}
    usable = os.sched_getaffinity(0)
    with serving(env, tmp_path / "server.log") as (url, proc):
        with _client(url) as client:  # the writer thread is running: it inherited the CPU
            assert client.post("/api/public/ingestion", json={"batch": []}).status_code == 207
        cpus = os.sched_getaffinity(proc.pid)
        threads = psutil.Process(proc.pid).threads()
        assert len(threads) > 1
        assert {frozenset(os.sched_getaffinity(t.id)) for t in threads} == {frozenset(cpus)}
        if affinity == "auto":
            assert len(cpus) == 1 and cpus <= usable
        else:
            assert cpus == usable


@needs_cpu_affinity
def test_several_api_processes_are_left_to_the_scheduler(tmp_path):
    import psutil

    with serving(_env(tmp_path, None), tmp_path / "server.log", workers=2) as (_, proc):
        children = [
            p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(children) == 2
        assert all(os.sched_getaffinity(c.pid) == os.sched_getaffinity(0) for c in children)
