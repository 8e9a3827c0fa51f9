"""API-key checks: cached, shared by concurrent requests, and checked again before expiry.

A real SQLite store with a real key; the scrypt check is counted by wrapping the module's own
function (tracehouse's, not a client's).
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tracehouse.auth import keys as keys_module
from tracehouse.auth.keys import Authenticator
from tracehouse.config import Settings
from tracehouse.errors import Unauthorized
from tracehouse.services.bootstrap import prepare_store
from tracehouse.store.db import make_engine

PUBLIC, SECRET = "pk-lf-auth-test", "sk-lf-auth-test"


def basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


@pytest.fixture
def auth(tmp_path, monkeypatch):
    settings = Settings(
        data_dir=tmp_path,
        LANGFUSE_INIT_ORG_ID="org",
        LANGFUSE_INIT_PROJECT_ID="proj",
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY=PUBLIC,
        LANGFUSE_INIT_PROJECT_SECRET_KEY=SECRET,
    )
    engine = make_engine(settings)
    prepare_store(engine, settings)
    checks = []
    real = keys_module.verify_secret

    def counted(secret: str, stored: str) -> bool:
        checks.append(secret)
        time.sleep(0.05)  # keep the check running while the other requests arrive
        return real(secret, stored)

    monkeypatch.setattr(keys_module, "verify_secret", counted)
    authenticator = Authenticator(engine)
    authenticator.checks = checks  # type: ignore[attr-defined]
    yield authenticator
    engine.dispose()


def test_concurrent_requests_with_new_credentials_share_one_check(auth):
    header = basic(PUBLIC, SECRET)
    with ThreadPoolExecutor(16) as pool:
        principals = list(pool.map(lambda _: auth.authenticate(header), range(16)))
    assert {p.project_id for p in principals} == {"proj"}
    assert len(auth.checks) == 1
    assert auth.cached(header).project_id == "proj"


def test_concurrent_requests_with_a_wrong_secret_all_fail_after_one_check(auth):
    header = basic(PUBLIC, "sk-lf-wrong")

    def attempt(_):
        with pytest.raises(Unauthorized):
            auth.authenticate(header)
        return True

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(attempt, range(8)))
    assert len(auth.checks) == 1
    with pytest.raises(Unauthorized):  # cached as bad for a while
        auth.cached(header)


def test_an_entry_close_to_expiry_is_checked_again_by_one_request(auth, monkeypatch):
    header = basic(PUBLIC, SECRET)
    auth.authenticate(header)
    now = time.monotonic()
    monkeypatch.setattr(
        keys_module.time,
        "monotonic",
        lambda: now + keys_module.POSITIVE_TTL_S - keys_module.REFRESH_AHEAD_S / 2,
    )
    answers = [auth.cached(header) for _ in range(5)]
    assert answers[0] is None  # this one checks again ...
    assert all(
        a is not None and a.project_id == "proj" for a in answers[1:]
    )  # ... the rest wait not
    assert auth.cached(header, refresh=False) is not None
    auth.authenticate(header)
    assert len(auth.checks) == 2
    assert auth.cached(header) is not None  # fresh again: no one is asked to check


def test_a_failed_check_lets_the_waiting_requests_check_on_their_own(auth, monkeypatch):
    header = basic(PUBLIC, SECRET)
    calls = []
    real_find = keys_module.project_store.find_api_key
    started = threading.Event()

    def flaky(conn, public_key):
        calls.append(public_key)
        if len(calls) == 1:
            started.set()
            time.sleep(0.1)
            raise RuntimeError("database went away")
        return real_find(conn, public_key)

    monkeypatch.setattr(keys_module.project_store, "find_api_key", flaky)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(auth.authenticate, header)
        started.wait(5)
        second = pool.submit(auth.authenticate, header)
        with pytest.raises(RuntimeError):
            first.result()
        assert second.result().project_id == "proj"
