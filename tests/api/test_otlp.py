"""POST /api/public/otel/v1/traces: protobuf and JSON, gzip, partial success, bad bodies."""

from __future__ import annotations

import base64
import gzip
import json
import os
import threading

from fastapi.testclient import TestClient
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.conftest import Project
from tests.contract import assert_response_matches
from tracehouse.app import create_app
from tracehouse.config import Settings

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


def _partial(r) -> tuple[int, str]:
    assert r.status_code == 200, r.text
    reply = ExportTraceServiceResponse.FromString(r.content)
    return reply.partial_success.rejected_spans, reply.partial_success.error_message


def _fresh_ids() -> tuple[bytes, bytes]:
    return os.urandom(16), os.urandom(8)


def test_truncated_protobuf_is_400_and_stores_nothing(project):
    trace_id, span_id = _fresh_ids()
    span = root_span()
    span.trace_id, span.span_id = trace_id, span_id
    body = export(span).SerializeToString()
    r = post(project, body[: len(body) // 2], "application/x-protobuf")
    assert r.status_code == 400
    assert "body" in r.json()["message"]
    assert project.get(f"/api/public/traces/{trace_id.hex()}").status_code == 404


def test_body_over_the_limit_is_413(project):
    span = root_span()
    span.attributes.append(kv("langfuse.observation.input", "x" * 17_000_000))
    body = export(span).SerializeToString()
    r = project.post(URL, content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 413
    assert "body" in r.json()["message"].lower()


def test_invalid_ids_reject_only_their_spans(project):
    trace_id, good_id = _fresh_ids()
    good = Span(trace_id=trace_id, span_id=good_id, name="good", start_time_unix_nano=T0)
    short_span_id = Span(
        trace_id=trace_id, span_id=b"\x01\x02\x03", name="short", start_time_unix_nano=T0
    )
    zero_trace = Span(
        trace_id=bytes(16),
        span_id=bytes.fromhex("2222222222222222"),
        name="zero",
        start_time_unix_nano=T0,
    )
    no_trace = Span(span_id=bytes.fromhex("3333333333333333"), name="none", start_time_unix_nano=T0)
    body = export(good, short_span_id, zero_trace, no_trace).SerializeToString()
    rejected, message = _partial(post(project, body, "application/x-protobuf"))
    assert rejected == 3
    assert "spanId" in message and "traceId" in message
    trace = project.get(f"/api/public/traces/{trace_id.hex()}").json()
    assert [o["id"] for o in trace["observations"]] == [good_id.hex()]


def test_invalid_json_ids_reject_only_their_spans(project):
    trace_id, good_id = _fresh_ids()
    spans = [
        {
            "traceId": trace_id.hex(),
            "spanId": good_id.hex(),
            "name": "good",
            "startTimeUnixNano": str(T0),
        },
        {
            "traceId": "not-hex!",
            "spanId": "4444444444444444",
            "name": "bad",
            "startTimeUnixNano": str(T0),
        },
        {"traceId": trace_id.hex(), "spanId": "abc", "name": "bad2", "startTimeUnixNano": str(T0)},
    ]
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    r = post(project, json.dumps(body).encode(), "application/json")
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "2"
    assert "traceId" in r.json()["partialSuccess"]["errorMessage"]
    trace = project.get(f"/api/public/traces/{trace_id.hex()}").json()
    assert [o["id"] for o in trace["observations"]] == [good_id.hex()]


def test_absurd_timestamps_are_kept_faithfully_or_rejected_with_the_field(project):
    trace_id, epoch_id = _fresh_ids()
    far_id, backwards_id, late_id = (bytes([n]) * 8 for n in (0x51, 0x52, 0x53))
    spans = [
        # 1 ns after the epoch: a real (if odd) instant, stored as it is
        Span(trace_id=trace_id, span_id=epoch_id, name="epoch", start_time_unix_nano=1),
        # the largest uint64 end time: year 2554, kept
        Span(
            trace_id=trace_id,
            span_id=far_id,
            name="far",
            start_time_unix_nano=T0,
            end_time_unix_nano=2**64 - 1,
        ),
        # ends before it starts: the end is clamped to the start, never a negative latency
        Span(
            trace_id=trace_id,
            span_id=backwards_id,
            name="backwards",
            start_time_unix_nano=T0,
            end_time_unix_nano=T0 - 10**9,
        ),
        # starts in the year 2554 (the latest uint64 instant): kept
        Span(trace_id=trace_id, span_id=late_id, name="late", start_time_unix_nano=2**64 - 1),
    ]
    body = export(*spans).SerializeToString()
    assert _partial(post(project, body, "application/x-protobuf"))[0] == 0
    # OTLP/JSON can say more than uint64: such a time is rejected alone, naming the field
    data = json_format.MessageToDict(export(root_span()))
    bad = {"traceId": trace_id.hex(), "spanId": "5454545454545454", "name": "y10k"}
    bad["startTimeUnixNano"] = "9" * 25
    data["resourceSpans"][0]["scopeSpans"][0]["spans"] = [bad]
    r = post(project, json.dumps(data).encode(), "application/json")
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "startTimeUnixNano" in r.json()["partialSuccess"]["errorMessage"]

    obs = {
        o["name"]: o
        for o in project.get(f"/api/public/traces/{trace_id.hex()}").json()["observations"]
    }
    assert set(obs) == {"epoch", "far", "backwards", "late"}
    assert obs["epoch"]["startTime"] == "1970-01-01T00:00:00.000Z"
    assert obs["far"]["endTime"].startswith("2554-07-21T23:34:33")
    assert obs["late"]["startTime"].startswith("2554-07-21T23:34:33")
    assert obs["backwards"]["endTime"] == obs["backwards"]["startTime"]
    assert obs["backwards"]["latency"] == 0


def test_every_attribute_value_type_is_stored_faithfully(project):
    trace_id, span_id = _fresh_ids()
    values = [
        KeyValue(key="s", value=AnyValue(string_value="text")),
        KeyValue(key="b", value=AnyValue(bool_value=False)),
        KeyValue(key="i", value=AnyValue(int_value=-(2**63))),
        KeyValue(key="d", value=AnyValue(double_value=0.25)),
        KeyValue(key="nan", value=AnyValue(double_value=float("nan"))),
        KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
    ]
    arr = KeyValue(key="arr")
    for item in (AnyValue(string_value="a"), AnyValue(int_value=1), AnyValue(bool_value=True)):
        arr.value.array_value.values.append(item)
    kvl = KeyValue(key="kv")
    kvl.value.kvlist_value.values.append(KeyValue(key="inner", value=AnyValue(double_value=1.5)))
    empty = KeyValue(key="empty", value=AnyValue())
    attrs = [*values, arr, kvl, empty]
    span = Span(trace_id=trace_id, span_id=span_id, name="types", start_time_unix_nano=T0)
    span.attributes.extend(
        KeyValue(key=f"langfuse.observation.metadata.{a.key}", value=a.value) for a in attrs
    )
    span.attributes.extend(attrs)  # the same values unmapped: kept as text in metadata.attributes
    request = export(span)
    request.resource_spans[0].scope_spans[0].scope.name = "custom-instrumentation"
    rejected, _ = _partial(post(project, request.SerializeToString(), "application/x-protobuf"))
    assert rejected == 0
    obs = project.get(f"/api/public/observations/{span_id.hex()}").json()
    md = obs["metadata"]
    assert md["s"] == "text" and md["b"] is False and md["i"] == -(2**63)
    assert md["d"] == 0.25 and md["nan"] == "NaN"
    assert md["raw"] == base64.b64encode(b"\x00\xff").decode()
    assert md["arr"] == ["a", 1, True]
    assert md["kv"] == {"inner": 1.5}
    assert md["empty"] is None
    unmapped = md["attributes"]
    assert unmapped["b"] == "false" and unmapped["arr"] == '["a",1,true]'
    assert unmapped["kv"] == '{"inner":1.5}' and unmapped["i"] == str(-(2**63))


def test_overloaded_writer_answers_503_with_retry_after(tmp_path):
    """A full writer queue is a 503 + Retry-After (OTLP exporters and the SDKs retry on it)."""
    settings = Settings(data_dir=tmp_path, writer_queue_events=5)
    with TestClient(create_app(settings)) as client:
        project = Project(client)
        writer = client.app.state.services.writer
        gate = threading.Event()
        busy = writer.call(lambda _conn: gate.wait(30))  # the writer is stuck on this job
        trace_id = bytes.fromhex("7" * 32)
        spans = [
            Span(
                trace_id=trace_id, span_id=bytes([n + 1]) * 8, name=f"s{n}", start_time_unix_nano=T0
            )
            for n in range(10)
        ]
        body = export(*spans).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        try:
            r = project.post(URL, content=body, headers=headers)  # 503 is not in the spec
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "1"
            assert "queue" in r.json()["message"]
            batch = project.ingest(
                *[
                    {
                        "id": f"e{n}",
                        "type": "trace-create",
                        "timestamp": "2026-01-01T00:00:00Z",
                        "body": {"id": f"t{n}"},
                    }
                    for n in range(10)
                ]
            )
            assert batch.status_code == 503 and batch.headers["Retry-After"] == "1"
        finally:
            gate.set()
            busy.result(timeout=30)
        # once the writer has caught up, the same export is accepted in full
        assert _partial(post(project, body, "application/x-protobuf"))[0] == 0
        trace = project.get(f"/api/public/traces/{trace_id.hex()}").json()
        assert len(trace["observations"]) == 10
