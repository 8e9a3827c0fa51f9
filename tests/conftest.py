"""Test harness: the real app on the embedded store and on the real PostgreSQL server.

Every test gets a fresh project with its own API key, so tests never see each other's data
(which also exercises project isolation). Run only the SQLite half with `-m "not postgres"`.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tracehouse.app import create_app
from tracehouse.config import Settings
from tracehouse.services.bootstrap import create_api_key
from tracehouse.store import projects as project_store

PG_ADMIN_URL = os.environ.get(
    "TRACEHOUSE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _pg_database() -> Iterator[str]:
    name = f"tracehouse_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_pg_url() -> Iterator[str]:
    """A throwaway database, as the ``postgresql://`` URL a `tracehouse serve` is given."""
    gen = _pg_database()
    url = next(gen)
    try:
        yield url.replace("postgresql+psycopg://", "postgresql://")
    finally:
        gen.close()


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def app_client(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One running app per backend for the whole session."""
    data_dir: Path = tmp_path_factory.mktemp(f"data-{backend}")
    if backend == "sqlite":
        settings = Settings(data_dir=data_dir)
        with TestClient(create_app(settings)) as client:
            yield client
    else:
        gen = _pg_database()
        url = next(gen)
        settings = Settings(data_dir=data_dir, database_url=url)
        try:
            with TestClient(create_app(settings)) as client:
                yield client
        finally:
            gen.close()


class Project:
    """A fresh project with its own key; `client` sends its Basic auth on every request."""

    def __init__(self, app_client: TestClient) -> None:
        services = app_client.app.state.services  # type: ignore[attr-defined]
        self.id = f"proj-{uuid.uuid4().hex[:10]}"
        with services.engine.begin() as conn:
            project_store.ensure_organization(conn, "test-org", "Test org")
            project_store.ensure_project(conn, self.id, "test-org", f"Project {self.id}")
        keys = create_api_key(services.engine, self.id)
        self.public_key, self.secret_key = keys.public_key, keys.secret_key
        token = base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        self.auth = {"Authorization": f"Basic {token}"}
        self.http = app_client

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return self.http.request(method, url, headers=headers, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)

    def ingest(self, *events: dict[str, Any]) -> httpx.Response:
        return self.post("/api/public/ingestion", json={"batch": list(events)})


@pytest.fixture
def project(app_client: TestClient) -> Project:
    return Project(app_client)


@pytest.fixture
def other_project(app_client: TestClient) -> Project:
    return Project(app_client)
