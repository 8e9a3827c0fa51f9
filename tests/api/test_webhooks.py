"""Webhooks on prompt changes: the config API, signed deliveries to a local receiver, retries
with backoff, the delivery log, filters, bad input and project isolation (SQLite and PostgreSQL).

The module runs its own app per backend with a fast webhook job (short poll and backoff), so the
``project`` fixtures here get keys on that app.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import _pg_database
from tracehouse import __version__
from tracehouse.app import create_app
from tracehouse.config import Settings

HOOKS = "/api/public/webhooks"
PROMPTS = "/api/public/v2/prompts"
MAX_ATTEMPTS = 4
FAST = {
    "webhook_poll_interval_s": 0.05,
    "webhook_backoff_base_s": 0.05,
    "webhook_backoff_max_s": 0.2,
    "webhook_max_attempts": MAX_ATTEMPTS,
    "webhook_timeout_s": 2.0,
}


@pytest.fixture(scope="module")
def app_client(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Overrides the session app of conftest: the same app, with a fast webhook job."""
    data_dir: Path = tmp_path_factory.mktemp(f"webhooks-{backend}")
    if backend == "sqlite":
        with TestClient(create_app(Settings(data_dir=data_dir, **FAST))) as client:
            yield client
        return
    gen = _pg_database()
    url = next(gen)
    try:
        settings = Settings(data_dir=data_dir, database_url=url, **FAST)
        with TestClient(create_app(settings)) as client:
            yield client
    finally:
        gen.close()


# --- a local receiver ------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """An HTTP server in a thread that records every request; a path can be told to answer
    500 a number of times (or always) before it answers 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.failures: dict[str, int] = {}  # path -> 500s still to answer (-1: always)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        Received(
                            "POST",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    left = receiver.failures.get(self.path, 0)
                    if left > 0:
                        receiver.failures[self.path] = left - 1
                status = 500 if left else 200
                reply = b"receiver says no" if status == 500 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def fail(self, path: str, times: int) -> None:
        with self.lock:
            self.failures[path] = times

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.at(path))} requests, expected {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def path() -> str:
    """A receiver path of this test alone."""
    return f"/hook/{uuid.uuid4().hex[:12]}"


# --- helpers ---------------------------------------------------------------------------------


def verify_langfuse_signature(raw_body: str, signature_header: str, secret: str) -> bool:
    """Langfuse's documented verifier: ``t=<ts>,v1=<hex>`` over ``"<ts>.<raw body>"``."""
    try:
        ts_pair, sig_pair = signature_header.split(",", 1)
        ts = ts_pair.split("=", 1)[1]
        sig = sig_pair.split("=", 1)[1]
        message = f"{ts}.{raw_body}".encode()
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sig)
    except Exception:
        return False


def _hook(project, url: str, **body: Any) -> dict[str, Any]:
    response = project.post(HOOKS, json={"url": url, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _prompt(project, name: str, **body: Any) -> dict[str, Any]:
    response = project.post(PROMPTS, json={"name": name, "prompt": "Hi {{who}}", **body})
    assert response.status_code == 200, response.text
    return response.json()


def _labels(project, name: str, version: int, labels: list[str]) -> httpx.Response:
    url = f"{PROMPTS}/{quote(name, safe='')}/versions/{version}"
    return project.request("PATCH", url, json={"newLabels": labels})


def _deliveries(project, hook_id: str, **params: Any) -> dict[str, Any]:
    response = project.get(f"{HOOKS}/{hook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _wait_log(project, hook_id: str, done, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The delivery log once ``done(log)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        log = _deliveries(project, hook_id)["data"]
        if done(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.03)


def _bad(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert field in response.json()["message"], response.json()


# --- configuration ---------------------------------------------------------------------------


def test_create_returns_the_secret_once_and_reads_mask_it(project, receiver, path):
    created = _hook(project, receiver.url(path), name="ci")
    assert created["secret"].startswith("lf-whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["created", "updated", "deleted"]
    assert created["promptNames"] is None
    assert created["headers"] == {}
    assert created["active"] is True
    assert created["name"] == "ci"
    assert created["projectId"] == project.id
    for key in ("id", "url", "createdAt", "updatedAt"):
        assert created[key]

    got = project.get(f"{HOOKS}/{created['id']}").json()
    assert got["secret"] != created["secret"]
    assert got["secret"].endswith(created["secret"][-4:]) and "…" in got["secret"]
    assert {k: v for k, v in got.items() if k != "secret"} == {
        k: v for k, v in created.items() if k != "secret"
    }
    listed = project.get(HOOKS).json()["data"]
    assert [h["id"] for h in listed] == [created["id"]]
    assert listed[0]["secret"] == got["secret"]


def test_patch_updates_only_the_given_fields(project, receiver, path):
    created = _hook(project, receiver.url(path), headers={"X-Team": "a"})
    response = project.request(
        "PATCH",
        f"{HOOKS}/{created['id']}",
        json={"events": ["deleted"], "promptNames": ["p"], "active": False},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["events"] == ["deleted"]
    assert patched["promptNames"] == ["p"]
    assert patched["active"] is False
    assert patched["headers"] == {"X-Team": "a"}
    assert patched["url"] == created["url"]
    back = project.request("PATCH", f"{HOOKS}/{created['id']}", json={"promptNames": None})
    assert back.json()["promptNames"] is None
    _bad(project.request("PATCH", f"{HOOKS}/{created['id']}", json={"url": None}), "url")


def test_rotate_secret_signs_later_deliveries_with_the_new_one(project, receiver, path):
    created = _hook(project, receiver.url(path))
    response = project.post(f"{HOOKS}/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()["secret"]
    assert rotated != created["secret"] and rotated.startswith("lf-whsec_")
    _prompt(project, "rotated")
    (got,) = receiver.wait_for(path, 1)
    signature = got.headers["x-langfuse-signature"]
    assert verify_langfuse_signature(got.body.decode(), signature, rotated)
    assert not verify_langfuse_signature(got.body.decode(), signature, created["secret"])


def test_delete_webhook(project, receiver, path):
    created = _hook(project, receiver.url(path))
    assert project.delete(f"{HOOKS}/{created['id']}").status_code == 204
    assert project.get(f"{HOOKS}/{created['id']}").status_code == 404
    assert project.delete(f"{HOOKS}/{created['id']}").status_code == 404
    assert project.get(HOOKS).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com", "events": ["created", "renamed"]}, "events"),
        ({"url": "https://example.com", "events": []}, "events"),
        ({"url": "https://example.com", "headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"url": "https://example.com", "headers": {"x-langfuse-signature": "x"}}, "headers"),
        ({"url": "https://example.com", "headers": {"User-Agent": "me"}}, "headers"),
        ({"url": "https://example.com", "headers": {"X-N": 1}}, "headers"),
        ({"url": "https://example.com", "headers": ["X-A"]}, "headers"),
        ({"url": "https://example.com", "promptNames": "p"}, "promptNames"),
        ({"url": "https://example.com", "active": "yes"}, "active"),
        ({"url": "https://example.com", "secret": "mine"}, "secret"),
    ],
)
def test_bad_input_is_400_naming_the_field(project, body, field):
    _bad(project.post(HOOKS, json=body), field)


def test_other_projects_webhooks_are_404(project, other_project, receiver, path):
    created = _hook(project, receiver.url(path))
    hook_url = f"{HOOKS}/{created['id']}"
    assert other_project.get(hook_url).status_code == 404
    assert other_project.request("PATCH", hook_url, json={"active": False}).status_code == 404
    assert other_project.post(f"{hook_url}/rotate-secret").status_code == 404
    assert other_project.get(f"{hook_url}/deliveries").status_code == 404
    assert other_project.delete(hook_url).status_code == 404
    assert other_project.get(HOOKS).json()["data"] == []
    assert project.get(hook_url).json()["active"] is True


# --- deliveries ------------------------------------------------------------------------------


def test_prompt_created_sends_a_signed_payload(project, receiver, path):
    hook = _hook(project, receiver.url(path))
    prompt = _prompt(project, "greeting", labels=["production"], config={"temperature": 0})
    (got,) = receiver.wait_for(path, 1)

    assert got.method == "POST"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == f"tracehouse/{__version__}"
    signature = got.headers["x-langfuse-signature"]
    assert signature.startswith("t=") and ",v1=" in signature
    assert abs(int(signature[2:].split(",")[0]) - time.time()) < 60
    assert verify_langfuse_signature(got.body.decode(), signature, hook["secret"])
    assert not verify_langfuse_signature(got.body.decode(), signature, hook["secret"] + "x")

    event = got.json()
    assert event["type"] == "prompt-version"
    assert event["apiVersion"] == "v1"
    assert event["action"] == "created"
    assert event["id"] and event["timestamp"].endswith("Z")
    sent = event["prompt"]
    for key in ("id", "name", "version", "type", "prompt", "config", "labels", "tags"):
        assert sent[key] == prompt[key], key
    assert sent["projectId"] == project.id

    (entry,) = _wait_log(project, hook["id"], lambda log: log and log[0]["status"] == "delivered")
    assert entry["status"] == "delivered"
    assert entry["attempts"] == 1
    assert entry["lastStatusCode"] == 200
    assert entry["lastError"] is None
    assert entry["deliveredAt"] and entry["createdAt"]
    assert entry["nextAttemptAt"] is None
    assert entry["action"] == "created"
    assert entry["id"] == event["id"]
    assert entry["payload"] == event  # the log keeps exactly what was sent


def test_label_move_and_delete(project, receiver, path):
    _hook(project, receiver.url(path))
    _prompt(project, "mover", labels=["production"])
    _prompt(project, "mover")
    receiver.wait_for(path, 2)
    assert _labels(project, "mover", 2, ["production"]).status_code == 200
    got = receiver.wait_for(path, 4)
    updates = sorted(
        (r.json()["prompt"]["version"], r.json()["prompt"]["labels"])
        for r in got
        if r.json()["action"] == "updated"
    )
    assert updates == [(1, []), (2, ["latest", "production"])]

    assert project.delete(f"{PROMPTS}/mover").status_code == 204
    got = receiver.wait_for(path, 6)
    deleted = sorted(r.json()["prompt"]["version"] for r in got if r.json()["action"] == "deleted")
    assert deleted == [1, 2]
    actions = sorted(r.json()["action"] for r in got)
    assert actions == ["created"] * 2 + ["deleted"] * 2 + ["updated"] * 2


def test_event_and_prompt_name_filters(project, receiver, path):
    deletes_only = path + "-deleted"
    named = path + "-named"
    _hook(project, receiver.url(deletes_only), events=["deleted"])
    _hook(project, receiver.url(named), promptNames=["wanted"])
    inactive = _hook(project, receiver.url(path + "-inactive"), active=False)
    _prompt(project, "wanted")
    _prompt(project, "ignored")
    assert project.delete(f"{PROMPTS}/ignored").status_code == 204

    (only_delete,) = receiver.wait_for(deletes_only, 1)
    assert only_delete.json()["action"] == "deleted"
    assert only_delete.json()["prompt"]["name"] == "ignored"
    (only_named,) = receiver.wait_for(named, 1)
    assert only_named.json()["prompt"]["name"] == "wanted"
    time.sleep(0.3)  # several poll rounds: nothing else arrives
    assert len(receiver.at(deletes_only)) == 1
    assert len(receiver.at(named)) == 1
    assert receiver.at(path + "-inactive") == []
    assert _deliveries(project, inactive["id"])["data"] == []


def test_custom_headers_are_sent(project, receiver, path):
    _hook(project, receiver.url(path), headers={"Authorization": "Bearer t0k", "X-Team": "ml"})
    _prompt(project, "headed")
    (got,) = receiver.wait_for(path, 1)
    assert got.headers["authorization"] == "Bearer t0k"
    assert got.headers["x-team"] == "ml"
    assert got.headers["content-type"] == "application/json"


def test_retries_until_the_receiver_succeeds(project, receiver, path):
    receiver.fail(path, 2)
    hook = _hook(project, receiver.url(path))
    _prompt(project, "flaky")
    got = receiver.wait_for(path, 3)
    assert len({r.json()["id"] for r in got}) == 1  # the same event, three times
    assert len({r.body for r in got}) == 1  # the exact same body
    for r in got:
        assert verify_langfuse_signature(
            r.body.decode(), r.headers["x-langfuse-signature"], hook["secret"]
        )

    (entry,) = _wait_log(project, hook["id"], lambda log: log and log[0]["status"] == "delivered")
    assert entry["status"] == "delivered"
    assert entry["attempts"] == 3
    assert entry["lastStatusCode"] == 200
    assert entry["lastError"] is None
    time.sleep(0.3)
    assert len(receiver.at(path)) == 3  # delivered: no more attempts


def test_permanent_failure_gives_up_after_max_attempts(project, receiver, path):
    receiver.fail(path, -1)
    hook = _hook(project, receiver.url(path))
    _prompt(project, "doomed")
    (entry,) = _wait_log(project, hook["id"], lambda log: log and log[0]["status"] == "failed")
    assert entry["status"] == "failed"
    assert entry["attempts"] == MAX_ATTEMPTS
    assert entry["lastStatusCode"] == 500
    assert "HTTP 500" in entry["lastError"] and "receiver says no" in entry["lastError"]
    assert entry["deliveredAt"] is None and entry["nextAttemptAt"] is None
    time.sleep(0.3)
    assert len(receiver.at(path)) == MAX_ATTEMPTS
    failed = _deliveries(project, hook["id"], status="failed")
    assert failed["meta"]["totalItems"] == 1
    assert _deliveries(project, hook["id"], status="delivered")["data"] == []


def test_unreachable_receiver_records_the_network_error(project):
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound, then closed: nobody listens
    hook = _hook(project, f"http://127.0.0.1:{port}/gone")
    _prompt(project, "nowhere")
    (entry,) = _wait_log(project, hook["id"], lambda log: log and log[0]["status"] == "failed")
    assert entry["attempts"] == MAX_ATTEMPTS
    assert entry["lastStatusCode"] is None
    assert "Connect" in entry["lastError"]


def test_deliveries_of_a_deactivated_webhook_fail_without_sending(project, receiver, path):
    receiver.fail(path, -1)
    hook = _hook(project, receiver.url(path))
    _prompt(project, "paused")
    receiver.wait_for(path, 1)
    project.request("PATCH", f"{HOOKS}/{hook['id']}", json={"active": False})
    (entry,) = _wait_log(project, hook["id"], lambda log: log and log[0]["status"] == "failed")
    assert entry["lastError"] == "webhook is inactive"
    assert len(receiver.at(path)) < MAX_ATTEMPTS


def test_delivery_log_is_newest_first_and_paginated(project, receiver, path):
    hook = _hook(project, receiver.url(path))
    for i in range(3):
        _prompt(project, f"p{i}")
    receiver.wait_for(path, 3)
    page = _deliveries(project, hook["id"], limit=2)
    assert page["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2}
    names = [d["payload"]["prompt"]["name"] for d in page["data"]]
    names += [
        d["payload"]["prompt"]["name"]
        for d in _deliveries(project, hook["id"], limit=2, page=2)["data"]
    ]
    assert names == ["p2", "p1", "p0"]
    _bad(project.get(f"{HOOKS}/{hook['id']}/deliveries", params={"status": "lost"}), "status")
    _bad(project.get(f"{HOOKS}/{hook['id']}/deliveries", params={"limit": 0}), "limit")


def test_projects_only_get_their_own_prompt_events(project, other_project, receiver, path):
    mine = _hook(project, receiver.url(path))
    _prompt(other_project, "theirs")
    _prompt(project, "mine")
    (got,) = receiver.wait_for(path, 1)
    assert got.json()["prompt"]["name"] == "mine"
    time.sleep(0.3)
    assert len(receiver.at(path)) == 1
    assert _deliveries(project, mine["id"])["meta"]["totalItems"] == 1


def test_several_processes_never_send_a_delivery_twice(app_client, project, receiver, path):
    """Two more jobs, as other `serve --workers` processes would run them, each writing in its
    own transactions, race the app's job for the same deliveries: each is sent exactly once."""
    import asyncio

    import anyio

    from tracehouse.jobs.webhooks import WebhookJob

    services = app_client.app.state.services
    engine = services.engine

    async def own_transaction(fn):
        def call():
            with engine.begin() as conn:
                return fn(conn)

        return await anyio.to_thread.run_sync(call)

    app_job = app_client.app.state.webhook_job
    sent_before = app_job.sent
    stop = threading.Event()
    sent: list[int] = []  # attempts made by each other job (races decide how many)

    def other_process() -> None:
        async def main() -> None:
            job = WebhookJob(
                engine, own_transaction, Settings(data_dir=Path("/nonexistent"), **FAST)
            )
            await job.start()
            while not stop.is_set():
                await asyncio.sleep(0.02)
            await job.stop()
            sent.append(job.sent)

        asyncio.run(main())

    others = [threading.Thread(target=other_process) for _ in range(2)]
    for t in others:
        t.start()
    try:
        hook = _hook(project, receiver.url(path))
        for i in range(12):
            _prompt(project, f"race-{i}")
        got = receiver.wait_for(path, 12)
        log = _wait_log(
            project, hook["id"], lambda log: all(d["status"] == "delivered" for d in log)
        )
        time.sleep(0.3)
    finally:
        stop.set()
        for t in others:
            t.join(10)
    got = receiver.at(path)
    ids = [r.json()["id"] for r in got]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert len(log) == 12 and {d["attempts"] for d in log} == {1}
    # Every attempt, by whichever process made it, reached the receiver once.
    assert app_job.sent - sent_before + sum(sent) == 12


def test_backoff_doubles_and_is_capped():
    from tracehouse.jobs.webhooks import backoff_s, sign

    waits = [backoff_s(n, 2.0, 60.0) for n in range(1, 9)]
    for n, wait in enumerate(waits[:5], start=1):
        assert 2.0 * 2 ** (n - 1) <= wait <= 2.0 * 2 ** (n - 1) * 1.1
    assert all(60.0 <= w <= 66.0 for w in waits[5:])
    header = sign("s3cret", b'{"a":1}', 1700000000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_langfuse_signature('{"a":1}', header, "s3cret")
