"""The real `tracehouse` command: start-up, headless init, printed keys, durability after kill -9."""

from __future__ import annotations

import base64
import os
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
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL
from tests.factories import event, new_id
from tests.serving import free_port, stop, wait_until_healthy
from tests.unit.test_writer_checkpoints import wal_index_held_by_others

pytestmark = pytest.mark.slow

INIT = {
    "LANGFUSE_INIT_ORG_ID": "acme",
    "LANGFUSE_INIT_ORG_NAME": "Acme",
    "LANGFUSE_INIT_PROJECT_ID": "acme-prod",
    "LANGFUSE_INIT_PROJECT_NAME": "Acme Production",
    "LANGFUSE_INIT_PROJECT_PUBLIC_KEY": "pk-lf-1234567890",
    "LANGFUSE_INIT_PROJECT_SECRET_KEY": "sk-lf-1234567890",
    "LANGFUSE_INIT_USER_EMAIL": "admin@acme.test",
    "LANGFUSE_INIT_USER_NAME": "Admin",
    "LANGFUSE_INIT_USER_PASSWORD": "correct horse battery staple",
}


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "TRACEHOUSE_"))}
    env.pop("DATABASE_URL", None)
    env["TRACEHOUSE_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def _auth(pk: str, sk: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()}


@contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracehouse", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, lambda: _output(proc))
        yield url, proc
    finally:
        stop(proc)


def _output(proc: subprocess.Popen[str]) -> str:
    return proc.stdout.read() if proc.stdout else ""


def test_headless_init_with_langfuse_variables_is_idempotent(tmp_path):
    env = _env(tmp_path, **INIT)
    for _ in range(2):  # the second start applies the same init again
        with server(env) as (url, proc):
            auth = _auth(
                INIT["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"], INIT["LANGFUSE_INIT_PROJECT_SECRET_KEY"]
            )
            r = httpx.get(url + "/api/public/projects", headers=auth)
            assert r.status_code == 200
            assert r.json()["data"][0]["id"] == "acme-prod"
            assert r.json()["data"][0]["name"] == "Acme Production"
            assert r.json()["data"][0]["organization"] == {"id": "acme", "name": "Acme"}
        assert "secret key:" not in _output(proc)
    db = tmp_path / "tracehouse.db"
    assert INIT["LANGFUSE_INIT_PROJECT_SECRET_KEY"].encode() not in db.read_bytes()


def test_first_start_prints_a_working_key_pair_once(tmp_path):
    with server(_env(tmp_path)) as (url, proc):
        pass
    out = _output(proc)
    pk = next(line.split()[-1] for line in out.splitlines() if "public key:" in line)
    sk = next(line.split()[-1] for line in out.splitlines() if "secret key:" in line)
    with server(_env(tmp_path)) as (url, proc):
        tid = new_id()
        r = httpx.post(
            url + "/api/public/ingestion",
            headers=_auth(pk, sk),
            json={"batch": [event("trace-create", {"id": tid})]},
        )
        assert r.status_code == 207 and r.json()["errors"] == []
    assert "secret key:" not in _output(proc)


def test_keys_create_makes_another_working_key(tmp_path):
    env = _env(tmp_path, **INIT)
    with server(env):
        pass
    out = subprocess.run(
        [sys.executable, "-m", "tracehouse", "keys", "create", "--project", "acme-prod"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pk = out.split("public key:")[1].split()[0]
    sk = out.split("secret key:")[1].split()[0]
    with server(env) as (url, _):
        assert httpx.get(url + "/api/public/traces", headers=_auth(pk, sk)).status_code == 200
    bad = subprocess.run(
        [sys.executable, "-m", "tracehouse", "keys", "create", "--project", "nope"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_accepted_data_survives_kill_9(tmp_path):
    env = _env(tmp_path, **INIT)
    auth = _auth(INIT["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"], INIT["LANGFUSE_INIT_PROJECT_SECRET_KEY"])
    ids = [new_id() for _ in range(200)]
    with server(env) as (url, proc):
        with httpx.Client(base_url=url, headers=auth) as client:
            for start in range(0, len(ids), 20):
                batch = [
                    event("trace-create", {"id": i, "name": "durable"})
                    for i in ids[start : start + 20]
                ]
                assert (
                    client.post("/api/public/ingestion", json={"batch": batch}).status_code == 207
                )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with server(env) as (url, _):
        r = httpx.get(
            url + "/api/public/traces", headers=auth, params={"name": "durable", "limit": 1}
        )
        assert r.json()["meta"]["totalItems"] == len(ids)


def test_migrate_command_and_readiness_on_postgres(tmp_path):
    name = f"tracehouse_srv_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = (
        PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
        + "/"
        + name
    )
    env = _env(tmp_path, DATABASE_URL=db_url, **INIT)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tracehouse", "migrate"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        with server(env) as (url, _):
            assert httpx.get(url + "/api/public/ready").status_code == 200
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            r = httpx.get(url + "/api/public/ready")
            assert r.status_code == 503
            assert httpx.get(url + "/api/public/health").status_code == 200
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_running_server_keeps_its_hold_on_the_wal_index(tmp_path):
    """Every process with the database open holds SQLite's shared lock on the WAL index; a
    connection that finds none truncates the index to build it anew. The server's checkpointer
    reads the index every second: it used to drop the process's locks on it by doing so, and
    then any other connection (another API process's, `sqlite3` on the file) truncated the index
    under the server's mapping of it, which killed API processes with SIGBUS under load."""
    env = _env(tmp_path, **INIT)
    auth = _auth(INIT["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"], INIT["LANGFUSE_INIT_PROJECT_SECRET_KEY"])
    with server(env) as (url, proc):
        batch = [event("trace-create", {"id": new_id(), "name": "held"})]
        r = httpx.post(url + "/api/public/ingestion", headers=auth, json={"batch": batch})
        assert r.status_code == 207
        time.sleep(2.5)  # the checkpointer has looked at the index twice or more
        assert wal_index_held_by_others(str(tmp_path / "tracehouse.db-shm"))
        assert proc.poll() is None
