"""Exports of hundreds of spans: the writer stores them in several multi-row statements."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.contract import assert_response_matches

URL = "/api/public/otel/v1/traces"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
TRACES, SPANS_PER_TRACE = 73, 10  # 730 spans: more than one statement's worth of rows


def kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_id(t: int) -> bytes:
    return (0xA1 << 120 | t).to_bytes(16, "big")


def span_id(t: int, s: int) -> bytes:
    return (0xB2 << 56 | t << 8 | s + 1).to_bytes(8, "big")


def big_export(run: str) -> bytes:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = "bench.app"
    for t in range(TRACES):
        for s in range(SPANS_PER_TRACE):
            span = scope_spans.spans.add(
                trace_id=trace_id(t),
                span_id=span_id(t, s),
                name=f"step-{s}",
                start_time_unix_nano=T0 + t * 1_000_000_000 + s * 1_000_123,
                end_time_unix_nano=T0 + t * 1_000_000_000 + s * 1_000_123 + 500_000,
            )
            if s == 0:
                span.name = f"{run}-trace-{t}"
                span.attributes.append(kv("session.id", f"{run}-session-{t % 7}"))
            else:
                span.parent_span_id = span_id(t, 0)
            if s % 3 == 1:
                span.attributes.extend(
                    [
                        kv("gen_ai.operation.name", "chat"),
                        kv("gen_ai.request.model", "gpt-4o"),
                        kv("gen_ai.usage.input_tokens", 10 + s),
                        kv("gen_ai.usage.output_tokens", t),
                        kv("gen_ai.input.messages", json.dumps([{"role": "user", "t": t}])),
                    ]
                )
    return request.SerializeToString()


def export(project, body: bytes) -> None:
    r = project.post(URL, content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert r.content == b""  # no partial success: every span was taken


def check_stored(project, run: str) -> list[dict]:
    r = project.get("/api/public/traces", params={"limit": 100})
    assert_response_matches(r)
    listed = r.json()
    assert listed["meta"]["totalItems"] == TRACES
    assert {t["name"] for t in listed["data"]} == {f"{run}-trace-{t}" for t in range(TRACES)}
    observations = []
    for page in (1, 2, 3, 4, 5, 6, 7, 8):
        r = project.get("/api/public/observations", params={"limit": 100, "page": page})
        assert_response_matches(r)
        observations.extend(r.json()["data"])
    assert len(observations) == TRACES * SPANS_PER_TRACE
    by_id = {o["id"]: o for o in observations}
    last = by_id[span_id(TRACES - 1, 7).hex()]
    assert last["traceId"] == trace_id(TRACES - 1).hex()
    assert last["parentObservationId"] == span_id(TRACES - 1, 0).hex()
    assert last["type"] == "GENERATION" and last["model"] == "gpt-4o"
    assert last["usageDetails"] == {"input": 17, "output": TRACES - 1, "total": 16 + TRACES}
    assert last["input"] == json.dumps([{"role": "user", "t": TRACES - 1}])
    assert last["startTime"] == "2026-01-01T00:01:12.007Z"
    r = project.get("/api/public/sessions", params={"limit": 50})
    assert_response_matches(r)
    assert sorted(s["id"] for s in r.json()["data"]) == [f"{run}-session-{i}" for i in range(7)]
    return observations


def test_an_export_of_hundreds_of_spans_is_stored_completely(project) -> None:
    export(project, big_export("big"))
    check_stored(project, "big")


def test_sending_a_large_export_twice_changes_nothing(project) -> None:
    body = big_export("twice")
    export(project, body)
    first = {o["id"]: o for o in check_stored(project, "twice")}
    export(project, body)
    second = {o["id"]: o for o in check_stored(project, "twice")}
    for obs_id, obs in first.items():
        again = second[obs_id]
        assert again["createdAt"] == obs["createdAt"]
        assert {k: v for k, v in again.items() if k != "updatedAt"} == {
            k: v for k, v in obs.items() if k != "updatedAt"
        }
