"""Compat harness: one real `tracehouse serve` subprocess per test session (per xdist worker).

The server runs on the embedded store in a temporary data dir, initialised headlessly with
LANGFUSE_INIT_* keys. Tests talk to it with the official SDKs (as subprocesses in their own
venvs, see `sdk_envs.py`) and with plain httpx, then read everything back through the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.sdk_envs import sdk_env
from tests.contract import assert_response_matches
from tests.serving import serving
from tracehouse.config import Settings
from tracehouse.services.bootstrap import create_api_key
from tracehouse.store.db import make_engine


@dataclass
class Server:
    url: str
    public_key: str
    secret_key: str
    project_id: str
    http: httpx.Client = field(repr=False)
    data_dir: Path | None = None

    def new_keys(self) -> tuple[str, str]:
        """A fresh API key pair of this server's project (written to its embedded store).

        The Langfuse SDK keeps one set of resources (HTTP client, exporter, prompt cache) per
        public key in a process, and ``shutdown`` closes them: test modules that each build and
        shut down a client therefore use keys of their own.
        """
        assert self.data_dir is not None
        engine = make_engine(Settings(data_dir=self.data_dir))
        try:
            keys = create_api_key(engine, self.project_id)
        finally:
            engine.dispose()
        return keys.public_key, keys.secret_key

    def sdk_env(self, **extra: str) -> dict[str, str]:
        """An environment for an SDK subprocess pointing at this server (and nothing else)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LANGFUSE_", "TRACEHOUSE_", "OTEL_"))
        }
        env.update(
            LANGFUSE_HOST=self.url,
            LANGFUSE_BASE_URL=self.url,
            LANGFUSE_PUBLIC_KEY=self.public_key,
            LANGFUSE_SECRET_KEY=self.secret_key,
        )
        env.update(extra)
        return env

    def get(self, path: str, **kw: Any) -> httpx.Response:
        """GET through the API, checked against the OpenAPI contract; must be 200."""
        r = self.http.get(path, **kw)
        assert r.status_code == 200, f"GET {path} -> {r.status_code}: {r.text}"
        assert_response_matches(r)
        return r

    def ingest(self, batch: list[dict[str, Any]]) -> httpx.Response:
        r = self.http.post("/api/public/ingestion", json={"batch": batch})
        assert r.status_code == 207, r.text
        assert_response_matches(r)
        body = r.json()
        assert body["errors"] == [], body["errors"]
        return r


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("compat-data")
    suffix = uuid.uuid4().hex[:8]
    pk, sk = f"pk-lf-compat-{suffix}", f"sk-lf-compat-{suffix}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "TRACEHOUSE_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        TRACEHOUSE_DATA_DIR=str(data_dir),
        LANGFUSE_INIT_ORG_ID="compat-org",
        LANGFUSE_INIT_ORG_NAME="Compat",
        LANGFUSE_INIT_PROJECT_ID="compat",
        LANGFUSE_INIT_PROJECT_NAME="Compat project",
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY=pk,
        LANGFUSE_INIT_PROJECT_SECRET_KEY=sk,
    )
    with (
        serving(env, data_dir) as url,
        httpx.Client(base_url=url, auth=(pk, sk), timeout=30) as http,
    ):
        yield Server(
            url=url,
            public_key=pk,
            secret_key=sk,
            project_id="compat",
            http=http,
            data_dir=data_dir,
        )


@pytest.fixture(scope="session")
def sdk2_python() -> Path:
    """The python of the cached venv holding the Langfuse Python SDK 2.x."""
    return sdk_env("2")


@pytest.fixture(scope="session")
def sdk3_python() -> Path:
    """The python of the cached venv holding the Langfuse Python SDK 3.x."""
    return sdk_env("3")


def run_sdk_script(
    python: Path, script: str, server: Server, *, timeout: float = 120, **env: str
) -> dict[str, Any]:
    """Run `script` with the SDK venv's python; it must print one JSON object last."""
    done = subprocess.run(
        [str(python), "-c", script],
        env=server.sdk_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"SDK script failed:\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"SDK script printed nothing:\n{done.stderr}"
    result = json.loads(lines[-1])
    result["_stderr"] = done.stderr
    return result


def sdk_script(template: str, **values: str) -> str:
    """``template`` with ``NAME = 'value'`` assignments put in front (ids, names of this run)."""
    prefix = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    return prefix + template


def assert_no_sdk_errors(result: dict[str, Any]) -> None:
    """The SDK logged no failed request or exception while the script ran."""
    stderr = result["_stderr"]
    markers = (
        "APIError",
        "Error while",
        "Traceback",
        "rejected",
        "Failed to export",  # the OTLP exporter (SDK >= 3)
        "Please check your request",  # a 4xx on an SDK API call (SDK >= 3)
        "API error",  # the score consumer (SDK >= 3)
    )
    for marker in markers:
        assert marker not in stderr, stderr


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


@contextmanager
def sdk_client(
    server: Server, environment: str | None, event_hooks: dict[str, list[Any]] | None = None
) -> Iterator[Any]:
    """The official Langfuse SDK (the main environment's 5.x) in this process, against
    ``server`` with a key of its own, a private tracer provider and an httpx client carrying
    ``event_hooks`` (to watch what the SDK sends); shut down afterwards."""
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider

    http = httpx.Client(timeout=30, event_hooks=event_hooks or {})
    public_key, secret_key = server.new_keys()
    client = Langfuse(
        public_key=public_key,
        secret_key=secret_key,
        base_url=server.url,
        tracer_provider=TracerProvider(),
        httpx_client=http,
        **({"environment": environment} if environment else {}),
    )
    try:
        yield client
    finally:
        client.shutdown()
        http.close()
