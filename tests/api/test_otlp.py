"""POST /api/public/otel/v1/traces: protobuf and JSON, gzip, partial success, bad bodies."""

from __future__ import annotations

import base64
import gzip
import json

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.contract import assert_response_matches

URL = "/api/public/otel/v1/traces"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
ROOT_ID = bytes.fromhex("b7ad6b7169203331")
GEN_ID = bytes.fromhex("00f067aa0ba902b7")


def kv(key, value):
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def export(*spans: Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "checkout"))
    ss = rs.scope_spans.add()
    ss.scope.name = "langfuse-sdk"
    ss.spans.extend(spans)
    return req


def root_span() -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=ROOT_ID,
        name="handle-request",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 3_000_000_000,
        attributes=[
            kv("langfuse.trace.name", "checkout-flow"),
            kv("user.id", "alice"),
            kv("session.id", "sess-9"),
            kv("langfuse.observation.input", json.dumps({"q": "hi"})),
        ],
    )


def generation_span() -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=GEN_ID,
        parent_span_id=ROOT_ID,
        name="llm-call",
        start_time_unix_nano=T0 + 500_000_000,
        end_time_unix_nano=T0 + 2_500_000_000,
        attributes=[
            kv("langfuse.observation.type", "generation"),
            kv("gen_ai.request.model", "gpt-4o"),
            kv("gen_ai.usage.input_tokens", 12),
            kv("gen_ai.usage.output_tokens", 7),
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="rate limited"),
    )


def post(project, body: bytes, content_type: str, **headers):
    r = project.post(URL, content=body, headers={"Content-Type": content_type, **headers})
    # OTLP answers in the request's encoding; the spec documents only the JSON form.
    if r.headers["content-type"].startswith("application/json"):
        assert_response_matches(r)
    return r


def check_landed(project):
    trace = project.get(f"/api/public/traces/{TRACE_ID.hex()}").json()
    assert trace["name"] == "checkout-flow"
    assert trace["userId"] == "alice"
    assert trace["sessionId"] == "sess-9"
    obs = {o["id"]: o for o in trace["observations"]}
    gen = obs[GEN_ID.hex()]
    assert gen["type"] == "GENERATION"
    assert gen["parentObservationId"] == ROOT_ID.hex()
    assert gen["model"] == "gpt-4o"
    assert gen["usageDetails"]["input"] == 12 and gen["usageDetails"]["output"] == 7
    assert gen["level"] == "ERROR" and gen["statusMessage"] == "rate limited"
    assert gen["startTime"] == "2026-01-01T00:00:00.500Z"


def test_protobuf_export_lands_as_trace_and_observations(project):
    r = post(
        project,
        export(root_span(), generation_span()).SerializeToString(),
        "application/x-protobuf",
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-protobuf")
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 0
    check_landed(project)


def test_json_export_with_hex_ids_lands_the_same(project):
    body = json_format.MessageToDict(export(root_span(), generation_span()))
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:  # OTLP/JSON carries ids as hex, not base64
                        span[key] = base64.b64decode(span[key]).hex()
    r = post(project, json.dumps(body).encode(), "application/json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    check_landed(project)


def test_gzip_body_is_accepted(project):
    body = gzip.compress(export(root_span(), generation_span()).SerializeToString())
    r = post(project, body, "application/x-protobuf", **{"Content-Encoding": "gzip"})
    assert r.status_code == 200
    check_landed(project)


def test_bad_span_is_reported_and_good_spans_are_kept(project):
    bad = Span(
        trace_id=b"",
        span_id=bytes.fromhex("1111111111111111"),
        name="no-trace",
        start_time_unix_nano=T0,
    )
    r = post(project, export(root_span(), bad).SerializeToString(), "application/x-protobuf")
    assert r.status_code == 200
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 1
    assert reply.partial_success.error_message
    assert project.get(f"/api/public/traces/{TRACE_ID.hex()}").status_code == 200


def test_undecodable_body_is_400(project):
    r = post(project, b"\xff\xfe not protobuf", "application/x-protobuf")
    assert r.status_code == 400
    r = post(project, b"{not json", "application/json")
    assert r.status_code == 400


def test_wrong_content_type_is_415(project):
    r = project.post(URL, content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "Content-Type" in r.json()["message"]


def test_credentials_are_required(app_client, project):
    body = export(root_span()).SerializeToString()
    r = app_client.post(URL, content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 401
    bearer = {
        "Authorization": f"Bearer {project.public_key}",
        "Content-Type": "application/x-protobuf",
    }
    assert app_client.post(URL, content=body, headers=bearer).status_code == 403
