"""Large requests: exports of hundreds of spans (stored in several multi-row statements), and
single values of several megabytes."""

from __future__ import annotations

import gzip
import json
import random
import string

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.contract import assert_response_matches
from tests.factories import event, new_id

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


def five_megabytes(seed: int) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(500)]
    text = " ".join(rng.choices(words, k=900_000))
    return text[: 5 * 2**20]


def test_a_generation_with_a_five_megabyte_input_is_stored_whole(project) -> None:
    """JSON batch, plain and gzip: a 5 MiB input and output read back byte for byte."""
    big_in, big_out = five_megabytes(1), five_megabytes(2)
    for encoding in ("identity", "gzip"):
        trace, generation = new_id(), new_id()
        body = json.dumps(
            {
                "batch": [
                    event("trace-create", {"id": trace, "name": "big"}),
                    event(
                        "generation-create",
                        {
                            "id": generation,
                            "traceId": trace,
                            "model": "gpt-4o",
                            "input": {"document": big_in},
                            "output": big_out,
                        },
                    ),
                ]
            }
        ).encode()
        assert len(body) > 10 * 2**20
        headers = {"Content-Type": "application/json"}
        if encoding == "gzip":
            body = gzip.compress(body, 1)
            headers["Content-Encoding"] = "gzip"
        r = project.post("/api/public/ingestion", content=body, headers=headers)
        assert r.status_code == 207 and r.json()["errors"] == [], r.text[:300]
        stored = project.get(f"/api/public/observations/{generation}").json()
        assert stored["input"] == {"document": big_in}
        assert stored["output"] == big_out


def test_an_otlp_span_with_a_five_megabyte_input_is_stored_whole(project) -> None:
    big = five_megabytes(3)
    request = ExportTraceServiceRequest()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(
            trace_id=trace_id(9001),
            span_id=span_id(9001, 0),
            name="big-span",
            start_time_unix_nano=T0,
            end_time_unix_nano=T0 + 1_000_000,
        )
    )
    span.attributes.extend(
        [kv("langfuse.observation.input", json.dumps({"document": big})), kv("x", 1)]
    )
    export(project, request.SerializeToString())
    stored = project.get(f"/api/public/observations/{span_id(9001, 0).hex()}").json()
    assert stored["input"] == {"document": big}
