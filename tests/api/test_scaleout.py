"""Scale-out profile: `serve --workers N` appends to a Redis Stream, `tracehouse worker` commits.

Runs against the real Redis (127.0.0.1:6379, override with TRACEHOUSE_TEST_REDIS_URL) and a
throwaway PostgreSQL database. Every test uses its own stream (deleted at the end), so parallel
runs never see each other's entries.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from tests.api import test_crash_safety as crash
from tests.conftest import Project, server_pg_url
from tests.factories import event, new_id
from tests.serving import free_port
from tracehouse.app import create_app
from tracehouse.config import ConfigError, Settings
from tracehouse.ingest.batch import parse_batch
from tracehouse.ingest.stream import (
    GROUP,
    StreamConsumer,
    dead_letter_stream,
    entry_fields,
)

REDIS_URL = os.environ.get("TRACEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
READ_YOUR_WRITES_S = 1.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from server_pg_url()


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"tracehouse-test:{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # no Redis at REDIS_URL fails the test: this profile runs on the real one
    try:
        yield name
    finally:
        client.delete(name, dead_letter_stream(name))
        client.close()


@pytest.fixture
def rclient() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def _env(tmp_path: Path, pg_url: str, stream: str, **extra: str) -> dict[str, str]:
    env = crash._env(tmp_path, pg_url)
    env.update(REDIS_URL=REDIS_URL, TRACEHOUSE_STREAM_NAME=stream)
    env.update(extra)
    return env


@contextmanager
def serving(env: dict[str, str], log_path: Path, workers: int = 1) -> Iterator[str]:
    with crash.serving(env, log_path, workers) as (url, _proc):
        yield url


@contextmanager
def working(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A `tracehouse worker`, running once it has joined the group (killed if left running)."""
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracehouse", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "consuming" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _stop(proc: subprocess.Popen[str], log_path: Path) -> int:
    """SIGTERM a worker and return how many entries it committed (it must exit with 0)."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log_path.read_text()
    found = re.findall(r"stopped: (\d+) entries", log_path.read_text())
    assert found, log_path.read_text()
    return int(found[-1])


def _wait_drained(client: redis.Redis, stream: str, timeout: float = 20) -> None:
    """Until every entry of the stream is committed and acknowledged (and so deleted)."""
    deadline = time.monotonic() + timeout
    while client.xlen(stream) or client.xpending(stream, GROUP)["pending"]:
        assert time.monotonic() < deadline, "the workers did not drain the stream"
        time.sleep(0.05)


def _read_back(http: httpx.Client, sent: crash.Sent) -> float:
    """Seconds from now until the request's trace and all its observations are readable."""
    t0 = time.monotonic()
    while True:
        r = http.get(f"/api/public/traces/{sent.trace_id}")
        if r.status_code == 200:
            ids = {o["id"] for o in r.json()["observations"]}
            if ids == set(sent.observations):
                return time.monotonic() - t0
        else:
            assert r.status_code == 404, r.text
        assert time.monotonic() - t0 < 5, f"{sent.trace_id} never became readable"
        time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_workers_with_a_stream_worker_reads_within_a_second(tmp_path, pg_url, stream):
    env = _env(tmp_path, pg_url, stream)
    with (
        serving(env, tmp_path / "serve.log", workers=2) as url,
        working(env, tmp_path / "worker.log") as worker,
        crash._client(url) as http,
    ):
        requests = []
        delays = []
        for n in range(12):
            sent = crash.ingestion_request() if n % 2 == 0 else crash.otlp_request()
            crash.send(http, sent)
            assert sent.outcome == "acknowledged", sent
            delays.append(_read_back(http, sent))
            requests.append(sent)
        assert max(delays) < READ_YOUR_WRITES_S, delays
        print(f"\nreply → readable: max {max(delays) * 1000:.0f} ms over {len(delays)} requests")

        # Scores (JSON batch and the scores route) go through the stream too.
        trace_id = requests[0].trace_id
        score_id = new_id()
        r = http.post(
            "/api/public/ingestion",
            json={
                "batch": [
                    event(
                        "score-create",
                        {"id": score_id, "traceId": trace_id, "name": "q", "value": 1},
                    )
                ]
            },
        )
        assert r.status_code == 207 and r.json()["errors"] == [], r.text
        r = http.post("/api/public/scores", json={"traceId": trace_id, "name": "q2", "value": 0.5})
        assert r.status_code == 200, r.text
        route_score = r.json()["id"]
        for sid in (score_id, route_score):
            t0 = time.monotonic()
            while http.get(f"/api/public/v2/scores/{sid}").status_code != 200:
                assert time.monotonic() - t0 < READ_YOUR_WRITES_S, sid
                time.sleep(0.005)

        # Deletes still run on the database directly.
        r = http.delete(f"/api/public/traces/{requests[1].trace_id}")
        assert r.status_code == 200, r.text

        assert crash.check_stored_exactly_once(url, requests[2:]) == {
            s.trace_id for s in requests[2:]
        }
        ready = httpx.get(url + "/api/public/ready").json()
        assert ready["ingestBacklog"] == 0 and ready["ingestWorkers"] >= 1, ready
        assert _stop(worker, tmp_path / "worker.log") >= 14


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_the_stream_nothing_lost_or_doubled(tmp_path, pg_url, stream, rclient):
    env = _env(tmp_path, pg_url, stream, TRACEHOUSE_WORKER_BATCH_ENTRIES="4")
    with (
        serving(env, tmp_path / "serve.log", workers=2) as url,
        working(env, tmp_path / "w1.log") as w1,
        working(env, tmp_path / "w2.log") as w2,
    ):
        with crash.Load(url) as load:
            load.wait_for_acknowledged(240)
        requests = load.sent
        assert all(s.outcome == "acknowledged" for s in requests), crash._outcomes(requests, set())
        _wait_drained(rclient, stream)
        found = crash.check_stored_exactly_once(url, requests)
        assert found == {s.trace_id for s in requests}
        traces, observations = crash.stored(url)
        assert len(traces) == len(requests)
        assert len(observations) == len(requests) * crash.SPANS_PER_REQUEST
        committed = [_stop(w1, tmp_path / "w1.log"), _stop(w2, tmp_path / "w2.log")]
    assert sum(committed) >= len(requests)
    assert all(committed), f"one worker did all the work: {committed}"
    print(f"\ntwo workers: {len(requests)} requests, entries committed per worker {committed}")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_worker_loses_nothing_its_entries_are_reclaimed(tmp_path, pg_url, stream, rclient):
    env = _env(tmp_path, pg_url, stream)
    # The first worker reads a batch, then "commits" for a minute: it is killed before that.
    slow = {**env, "TRACEHOUSE_WORKER_COMMIT_DELAY_MS": "60000"}
    with serving(env, tmp_path / "serve.log") as url, crash._client(url) as http:
        requests = [crash.ingestion_request() if n % 2 else crash.otlp_request() for n in range(8)]
        for sent in requests:
            crash.send(http, sent)
            assert sent.outcome == "acknowledged"
        assert rclient.xlen(stream) == len(requests)
        with working(slow, tmp_path / "doomed.log") as doomed:
            deadline = time.monotonic() + 10
            while rclient.xpending(stream, GROUP)["pending"] < len(requests):
                assert time.monotonic() < deadline, "the doomed worker did not read the batch"
                time.sleep(0.02)
            doomed.kill()
            doomed.wait()
        assert crash.stored(url) == ([], [])  # it committed nothing
        held = rclient.xpending(stream, GROUP)["pending"]
        assert held == len(requests)

        rescuer = {**env, "TRACEHOUSE_WORKER_RECLAIM_IDLE_MS": "300"}
        with working(rescuer, tmp_path / "rescuer.log") as worker:
            _wait_drained(rclient, stream)
            found = crash.check_stored_exactly_once(url, requests)
            assert found == {s.trace_id for s in requests}
            traces, observations = crash.stored(url)
            assert len(traces) == len(requests)
            assert len(observations) == len(requests) * crash.SPANS_PER_REQUEST
            assert _stop(worker, tmp_path / "rescuer.log") == len(requests)
        assert "reclaimed" in (tmp_path / "rescuer.log").read_text()
    print(f"\nkilled worker held {held} entries; all {len(requests)} stored once")


@pytest.mark.slow
@pytest.mark.postgres
def test_backlog_limit_bad_entries_and_redelivery(tmp_path, pg_url, stream, rclient):
    """In process: 503 + Retry-After past the backlog limit, dead letters for undecodable
    entries, and an entry committed twice (ack lost) is stored once."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=pg_url,
        redis_url=REDIS_URL,
        stream_name=stream,
        stream_max_backlog=2,
    )
    with TestClient(create_app(settings)) as app_client:
        project = Project(app_client)
        services = app_client.app.state.services  # type: ignore[attr-defined]
        trace_ids = [new_id() for _ in range(3)]
        replies = [
            project.ingest(event("trace-create", {"id": tid, "name": "bp"})) for tid in trace_ids
        ]
        assert [r.status_code for r in replies] == [207, 207, 503]
        assert replies[2].headers["Retry-After"] == "1"
        assert replies[2].json()["error"] == "ServiceUnavailableError"

        consumer = StreamConsumer(settings, services.engine, rclient, name="in-process")
        assert consumer.step(block_ms=10) == 2
        time.sleep(0.15)  # the API refreshes a full backlog's length at most every 0.1 s
        assert project.ingest(event("trace-create", {"id": trace_ids[2]})).status_code == 207

        # An entry nobody can decode goes to the dead-letter stream; its neighbour is stored.
        rclient.xadd(stream, {"f": b"1", "p": project.id.encode(), "e": b"{broken"})
        assert consumer.step(block_ms=10) == 2
        dead = rclient.xrange(dead_letter_stream(stream))
        assert len(dead) == 1 and b"undecodable" in dead[0][1][b"error"]
        for tid in trace_ids:
            assert project.get(f"/api/public/traces/{tid}").status_code == 200

        # The same request delivered twice (a worker died after commit, before ack).
        obs_id = new_id()
        batch = [
            event("span-create", {"id": obs_id, "traceId": trace_ids[0], "name": "s"}),
            event("span-update", {"id": obs_id, "output": "done"}, at=1),
        ]
        events = parse_batch({"batch": batch}).events
        for _ in range(2):
            rclient.xadd(stream, entry_fields(project.id, events))
            assert consumer.step(block_ms=10) == 1
        trace = project.get(f"/api/public/traces/{trace_ids[0]}").json()
        assert [o["id"] for o in trace["observations"]] == [obs_id]
        assert trace["observations"][0]["output"] == "done"
        assert rclient.xlen(stream) == 0

        # A batch over `writer_batch_events` is committed in several transactions; an entry the
        # database keeps refusing (a NUL character in a text column) is set aside after
        # `worker_max_attempts` tries while its neighbours are stored.
        for events_per_commit in (1, 5000):
            tuned = settings.model_copy(
                update={"writer_batch_events": events_per_commit, "worker_max_attempts": 2}
            )
            consumer = StreamConsumer(tuned, services.engine, rclient, name="in-process-2")
            good = [new_id() for _ in range(3)]
            for n, tid in enumerate(good):
                events = parse_batch({"batch": [event("trace-create", {"id": tid})]}).events
                rclient.xadd(stream, entry_fields(project.id, events))
                if n == 1:
                    bad = parse_batch({"batch": [event("trace-create", {"id": "x"})]}).events
                    bad[0].fields["name"] = "nul \x00 inside"
                    rclient.xadd(stream, entry_fields(project.id, bad))
            assert consumer.step(block_ms=10) == 4
            # one commit per entry; or the batch fails, then each entry is tried alone
            assert (consumer.commits, consumer.dead_letters) == (3, 1), events_per_commit
            for tid in good:
                assert project.get(f"/api/public/traces/{tid}").status_code == 200
            dead = rclient.xrange(dead_letter_stream(stream))[-1][1]
            assert b"nul" in dead[b"e"] and b"error" in dead, dead
            assert rclient.xlen(stream) == 0


def test_redis_without_postgres_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        create_app(Settings(data_dir=tmp_path, redis_url=REDIS_URL))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "LANGFUSE_"))}
    env.pop("DATABASE_URL", None)
    env.update(TRACEHOUSE_DATA_DIR=str(tmp_path), REDIS_URL=REDIS_URL)
    for command in (["serve", "--port", str(free_port())], ["worker"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tracehouse", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0
        assert "REDIS_URL" in proc.stderr and "DATABASE_URL" in proc.stderr, proc.stderr
    env.pop("REDIS_URL")
    proc = subprocess.run(
        [sys.executable, "-m", "tracehouse", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "set REDIS_URL" in proc.stderr, proc.stderr
