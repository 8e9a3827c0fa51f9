"""IngestFastPath: the ingestion routes' work without routing, with the routes' own replies.

POSTs to /api/public/ingestion and /api/public/otel/v1/traces are taken before routing and
dependency resolution; what they answer is pinned here against what the routes answer, and the
authentication they run (cache, refresh before expiry, secret key only for OTLP) is the routes'
own. An unexpected error still reaches the app's server-error handling.
"""

from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.factories import event, new_id, settings_with_key
from tracehouse.api.deps import any_principal, get_services
from tracehouse.app import create_app
from tracehouse.auth.keys import Authenticator

OTLP = "/api/public/otel/v1/traces"
INGESTION = "/api/public/ingestion"
PUBLIC, SECRET = "pk-lf-fast", "sk-lf-fast"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()}


def _export(trace_id: bytes) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = trace_id, b"\x01" * 8, "root"
    span.start_time_unix_nano = span.end_time_unix_nano = 1_767_225_600_000_000_000
    return request.SerializeToString()


@pytest.fixture
def client(tmp_path):
    settings = settings_with_key(tmp_path, PUBLIC, SECRET)
    with TestClient(create_app(settings)) as c:
        yield c


def _refuse() -> None:
    raise AssertionError("the route's dependencies ran")


def test_ingestion_posts_skip_routing_and_dependencies(client):
    # With the routes' dependencies made to fail, both POSTs still succeed: they never ran.
    client.app.dependency_overrides[get_services] = _refuse
    client.app.dependency_overrides[any_principal] = _refuse
    tid = new_id()
    r = client.post(INGESTION, json={"batch": [event("trace-create", {"id": tid})]}, headers=BASIC)
    assert r.status_code == 207 and r.json()["successes"][0]["status"] == 201
    r = client.post(
        OTLP,
        content=_export(b"\x02" * 16),
        headers={**BASIC, "Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    # Other routes still go through them.
    with pytest.raises(AssertionError, match="dependencies ran"):
        client.get("/api/public/traces", headers=BASIC)
    client.app.dependency_overrides.clear()
    listed = client.get("/api/public/traces", headers=BASIC).json()["data"]
    assert {t["id"] for t in listed} == {tid, "02" * 16}


@pytest.mark.parametrize("path", [INGESTION, OTLP])
def test_bad_credentials_get_the_routes_401(client, path):
    expected = client.get("/api/public/traces").json()  # a route's 401 for no credentials
    r = client.post(path, content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json() == expected
    wrong = {"Authorization": "Basic " + base64.b64encode(b"pk-lf-fast:sk-lf-wrong").decode()}
    expected = client.get("/api/public/traces", headers=wrong).json()
    r = client.post(path, content=b"{}", headers={**wrong, "Content-Type": "application/json"})
    assert r.status_code == 401 and r.json() == expected


def test_a_public_key_alone_may_send_scores_but_not_spans(client):
    bearer = {"Authorization": f"Bearer {PUBLIC}"}
    r = client.post(
        OTLP, content=_export(b"\x03" * 16), headers={**bearer, "Content-Type": "application/json"}
    )
    assert r.status_code == 403
    assert r.json() == client.get("/api/public/traces", headers=bearer).json()  # the route's 403
    score = event("score-create", {"id": new_id(), "traceId": new_id(), "name": "n", "value": 1})
    r = client.post(INGESTION, json={"batch": [score]}, headers=bearer)
    assert r.status_code == 207 and r.json()["successes"] == [{"id": score["id"], "status": 201}]


def test_errors_are_rendered_as_the_app_renders_them(client):
    r = client.post(OTLP, content=b"x", headers={**BASIC, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "UnsupportedMediaTypeError"
    assert "Content-Type" in r.json()["message"]
    r = client.post(INGESTION, content=b"{not json", headers=BASIC)
    assert r.status_code == 400 and r.json()["error"] == "InvalidRequestError"
    assert "malformed JSON" in r.json()["message"]
    too_large = client.app.state.services.settings.max_body_bytes + 1
    r = client.post(INGESTION, headers={**BASIC, "Content-Length": str(too_large)}, content=b"")
    assert r.status_code == 413 and "limit" in r.json()["message"]


def test_other_methods_go_on_to_the_app(client):
    r = client.request("PUT", INGESTION, json={}, headers=BASIC)
    assert r.status_code == 405 and r.json()["error"] == "MethodNotAllowedError"
    r = client.get(OTLP, headers=BASIC)
    assert r.status_code == 405


def test_credentials_close_to_expiry_are_checked_again(client):
    # Cached 20 s and checked again in their last 18 s: fresh for 2 s after each check, so a
    # request 2.2 s later checks again, and one right after it (well within 2 s, even on a
    # loaded machine) does not.
    services = client.app.state.services
    services.authenticator = auth = Authenticator(
        services.engine, positive_ttl_s=20.0, refresh_ahead_s=18.0
    )
    batch = {"batch": [event("trace-create", {"id": new_id()})]}
    assert client.post(INGESTION, json=batch, headers=BASIC).status_code == 207
    assert auth.checks == 1
    time.sleep(2.2)
    assert client.post(INGESTION, json=batch, headers=BASIC).status_code == 207
    assert auth.checks == 2  # this request checked again, as the route's dependency does
    headers = {**BASIC, "Content-Type": "application/x-protobuf"}
    assert client.post(OTLP, content=_export(b"\x04" * 16), headers=headers).status_code == 200
    assert auth.checks == 2  # fresh again: from the cache


class _BrokenWriter:
    """A write path that fails as a bug would."""

    async def write(self, *_args: object) -> None:
        raise RuntimeError("boom")


def test_an_unexpected_error_is_a_json_500_and_reaches_the_server(client, caplog):
    services = client.app.state.services
    writer, services.writer = services.writer, _BrokenWriter()
    batch = {"batch": [event("trace-create", {"id": new_id()})]}
    try:
        with pytest.raises(RuntimeError, match="boom"):  # raised on, as the app raises it
            client.post(INGESTION, json=batch, headers=BASIC)
        quiet = TestClient(client.app, raise_server_exceptions=False)
        r = quiet.post(INGESTION, json=batch, headers=BASIC)
        assert r.status_code == 500
        assert r.json() == {"message": "Internal Server Error", "error": "InternalServerError"}
        assert "unhandled error on POST /api/public/ingestion" in caplog.text
    finally:
        services.writer = writer
