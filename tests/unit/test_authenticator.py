"""API-key checks: cached, shared by concurrent requests, and checked again before expiry.

A real SQLite store with a real key and the real scrypt check (about 60 ms each); the
authenticator counts the checks it runs.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import settings_with_key
from tracehouse.auth.keys import Authenticator
from tracehouse.errors import Unauthorized
from tracehouse.services.bootstrap import prepare_store
from tracehouse.store.db import make_engine

PUBLIC, SECRET = "pk-lf-auth-test", "sk-lf-auth-test"


def basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


@pytest.fixture
def engine(tmp_path):
    settings = settings_with_key(tmp_path, PUBLIC, SECRET)
    eng = make_engine(settings)
    prepare_store(eng, settings)
    yield eng
    eng.dispose()


def all_at_once(count: int, fn):
    """``fn()`` on ``count`` threads released together; their results or exceptions."""
    barrier = threading.Barrier(count)

    def run(_):
        barrier.wait()
        try:
            return fn()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_requests_with_new_credentials_share_one_check(engine):
    auth = Authenticator(engine)
    header = basic(PUBLIC, SECRET)
    principals = all_at_once(16, lambda: auth.authenticate(header))
    assert {p.project_id for p in principals} == {"proj"}
    assert auth.checks == 1
    assert auth.cached(header).project_id == "proj"
    assert auth.checks == 1


def test_concurrent_requests_with_a_wrong_secret_all_fail_after_one_check(engine):
    auth = Authenticator(engine)
    header = basic(PUBLIC, "sk-lf-wrong")
    answers = all_at_once(8, lambda: auth.authenticate(header))
    assert all(isinstance(a, Unauthorized) for a in answers)
    assert auth.checks == 1
    with pytest.raises(Unauthorized):  # cached as bad for a while
        auth.cached(header)


def test_an_entry_close_to_expiry_is_checked_again_by_one_request(engine):
    # Good credentials stay cached 2 s here, and are checked again in their last 1.5 s.
    auth = Authenticator(engine, positive_ttl_s=2.0, refresh_ahead_s=1.5)
    header = basic(PUBLIC, SECRET)
    auth.authenticate(header)
    assert auth.cached(header) is not None  # fresh: no one is asked to check
    time.sleep(0.6)  # now within the last 1.5 s
    answers = [auth.cached(header) for _ in range(5)]
    assert answers[0] is None  # this one checks again ...
    assert all(a is not None and a.project_id == "proj" for a in answers[1:])  # ... others wait not
    assert auth.cached(header, refresh=False) is not None
    auth.authenticate(header)
    assert auth.checks == 2
    assert auth.cached(header) is not None  # fresh again
