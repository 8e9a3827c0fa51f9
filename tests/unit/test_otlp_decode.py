"""OTLP trace exports (protobuf and OTLP/JSON) decode into the events the JSON batch would give."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracehouse.domain.events import OBSERVATION_FIELDS, TRACE_FIELDS
from tracehouse.errors import InvalidInput
from tracehouse.ingest import otlp
from tracehouse.ingest.otlp import DecodedExport, decode_json, decode_protobuf

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT = "b7ad6b7169203331"
CHILD = "00f067aa0ba902b7"
T0 = 1_700_000_000_123_456_789  # ns
T1 = T0 + 2_500_000_000


def _fill(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            _fill(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for k, v in value.items():
            _fill(target.kvlist_value.values.add(key=k).value, v)


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in attrs.items():
        kv = KeyValue(key=key)
        _fill(kv.value, value)
        out.append(kv)
    return out


def span(
    name: str,
    span_id: str = ROOT,
    parent: str | None = None,
    attrs: dict[str, Any] | None = None,
    *,
    trace_id: str = TRACE,
    start: int = T0,
    end: int = T1,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    status: Status | None = None,
) -> Span:
    s = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=kvs(attrs or {}),
    )
    if parent:
        s.parent_span_id = bytes.fromhex(parent)
    for event_name, event_attrs in events:
        s.events.add(name=event_name, time_unix_nano=start, attributes=kvs(event_attrs))
    if status is not None:
        s.status.CopyFrom(status)
    return s


def export(
    *spans: Span,
    resource: dict[str, Any] | None = None,
    scope: str = "my-instrumentation",
    scope_version: str = "1.0.0",
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kvs(resource or {"service.name": "svc"}))
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.scope.version = scope_version
    ss.spans.extend(spans)
    return req


def as_otlp_json(req: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form: protobuf JSON mapping with ids as hex instead of base64."""
    data = json_format.MessageToDict(req)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64decode(s[key]).hex()
    return data


def both(req: ExportTraceServiceRequest) -> list[DecodedExport]:
    """Decode the export as protobuf bytes and as OTLP/JSON bytes; both must agree."""
    from_proto = decode_protobuf(req.SerializeToString())
    from_json = decode_json(json.dumps(as_otlp_json(req)).encode())
    assert _comparable(from_proto) == _comparable(from_json)
    return [from_proto, from_json]


def decode_request(req: ExportTraceServiceRequest, **options: Any) -> DecodedExport:
    """Decode a parsed export, and its bytes (in compiled installs, read by ``_otlp_wire``
    without protobuf): both must agree, so every mapping test here covers both readers."""
    from_request = otlp.decode_request(req, **options)
    from_bytes = decode_protobuf(req.SerializeToString(), **options)
    assert _comparable(from_bytes) == _comparable(from_request)
    return from_bytes


def _comparable(decoded: DecodedExport) -> Any:
    return (
        [(e.kind, e.entity_id, e.timestamp, e.fields) for e in decoded.events],
        decoded.rejected,
        decoded.span_count,
    )


def by_kind(decoded: DecodedExport, kind: str) -> dict[str, dict[str, Any]]:
    return {e.entity_id: e.fields for e in decoded.events if e.kind == kind}


def only(decoded: DecodedExport, kind: str) -> dict[str, Any]:
    found = by_kind(decoded, kind)
    assert len(found) == 1, found
    return next(iter(found.values()))


# --------------------------------------------------------------------------------------------


def test_langfuse_sdk_trace_with_generation() -> None:
    root = span(
        "handle-request",
        ROOT,
        attrs={
            "langfuse.observation.type": "span",
            "langfuse.trace.name": "chat-turn",
            "user.id": "user-1",
            "session.id": "sess-1",
            "langfuse.trace.tags": ["a", "b"],
            "langfuse.trace.public": True,
            "langfuse.trace.metadata.team": "core",
            "langfuse.trace.input": '{"q": "hi"}',
            "langfuse.trace.output": '"hello"',
            "langfuse.observation.input": '{"step": 1}',
            "langfuse.observation.metadata.route": "/chat",
            "langfuse.observation.metadata.nested": '{"b": 1}',
            "langfuse.version": "v7",
            "langfuse.release": "r1",
            "langfuse.environment": "Production",
        },
    )
    gen = span(
        "llm-call",
        CHILD,
        ROOT,
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.model.parameters": '{"temperature": 0.2, "stop": ["x"]}',
            "langfuse.observation.usage_details": '{"input": 10, "output": 5, "total": 15}',
            "langfuse.observation.cost_details": '{"input": 0.01, "output": 0.02}',
            "langfuse.observation.completion_start_time": '"2023-11-14T22:13:21.000Z"',
            "langfuse.observation.prompt.name": "greeting",
            "langfuse.observation.prompt.version": 3,
            "langfuse.observation.input": '[{"role": "user", "content": "hi"}]',
            "langfuse.observation.output": "hello",
            "langfuse.observation.level": "warn",
            "langfuse.observation.status_message": "slow",
            "langfuse.environment": "production",
        },
    )
    for decoded in both(export(root, gen, scope="langfuse-sdk", scope_version="3.5.0")):
        assert decoded.rejected == [] and decoded.span_count == 2
        trace = only(decoded, "trace")
        assert set(trace) <= TRACE_FIELDS
        assert trace["name"] == "chat-turn"
        assert trace["user_id"] == "user-1" and trace["session_id"] == "sess-1"
        assert trace["tags"] == ["a", "b"] and trace["public"] is True
        # The SDKs send non-string I/O as JSON text; Langfuse's API reads it back decoded.
        assert trace["input"] == {"q": "hi"} and trace["output"] == "hello"
        assert trace["version"] == "v7" and trace["release"] == "r1"
        assert trace["environment"] == "production"
        assert trace["timestamp"] == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
        assert trace["metadata"]["team"] == "core" and trace["metadata"]["route"] == "/chat"
        assert "attributes" not in trace["metadata"]  # Langfuse SDK scope

        obs = by_kind(decoded, "observation")
        assert set(obs) == {ROOT, CHILD}
        assert all(set(f) <= OBSERVATION_FIELDS for f in obs.values())
        r, g = obs[ROOT], obs[CHILD]
        assert r["type"] == "SPAN" and "parent_observation_id" not in r
        assert r["input"] == {"step": 1} and r["metadata"]["nested"] == '{"b": 1}'
        assert r["metadata"]["scope"] == {
            "name": "langfuse-sdk",
            "version": "3.5.0",
            "attributes": {},
        }
        assert r["metadata"]["resourceAttributes"] == {"service.name": "svc"}
        assert g["type"] == "GENERATION" and g["parent_observation_id"] == ROOT
        assert g["trace_id"] == TRACE
        assert g["model"] == "gpt-4o"
        assert g["model_parameters"] == {"temperature": 0.2, "stop": '["x"]'}
        assert g["usage_details"] == {"input": 10, "output": 5, "total": 15}
        assert g["cost_details"] == {"input": 0.01, "output": 0.02}
        assert g["completion_start_time"] == datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)
        assert (g["prompt_name"], g["prompt_version"]) == ("greeting", 3)
        assert g["level"] == "WARNING" and g["status_message"] == "slow"
        assert g["output"] == "hello"
        assert g["start_time"] < g["end_time"]


def test_child_span_without_trace_attributes_gives_no_trace_event() -> None:
    decoded = decode_request(export(span("child", CHILD, ROOT, {"foo": "bar"})))
    assert [e.kind for e in decoded.events] == ["observation"]
    obs = only(decoded, "observation")
    assert obs["metadata"]["attributes"] == {"foo": "bar"}
    assert obs["environment"] == "default" and obs["level"] == "DEFAULT"


def test_child_span_with_trace_attributes_updates_only_those_fields() -> None:
    decoded = decode_request(export(span("child", CHILD, ROOT, {"langfuse.user.id": "u9", "x": 1})))
    trace = only(decoded, "trace")
    assert trace["user_id"] == "u9"
    assert "name" not in trace and "timestamp" not in trace and "input" not in trace
    assert "attributes" not in trace["metadata"]


def test_as_root_span_names_the_trace_and_keeps_its_parent() -> None:
    decoded = decode_request(
        export(span("sub-agent", CHILD, ROOT, {"langfuse.internal.as_root": True}))
    )
    assert only(decoded, "trace")["name"] == "sub-agent"
    assert only(decoded, "observation")["parent_observation_id"] == ROOT


def test_genai_semconv_span_with_message_events() -> None:
    s = span(
        "chat gpt-4o-mini",
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.request.temperature": 0.5,
            "gen_ai.request.max_tokens": 100,
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.cost": 0.003,
        },
        events=[
            ("gen_ai.system.message", {"content": "be brief"}),
            ("gen_ai.user.message", {"content": "hi"}),
            ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": '{"c": 1}'}),
        ],
    )
    for decoded in both(export(s)):
        obs = only(decoded, "observation")
        assert obs["type"] == "GENERATION"
        assert obs["model"] == "gpt-4o-mini-2024-07-18"
        assert obs["model_parameters"] == {"temperature": 0.5, "max_tokens": 100}
        assert obs["usage_details"] == {"input": 12, "output": 7}
        assert obs["cost_details"] == {"total": 0.003}
        assert obs["input"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ]
        assert obs["output"] == {"index": 0, "finish_reason": "stop", "message": '{"c": 1}'}
        assert obs["metadata"]["attributes"]["gen_ai.system"] == "openai"
        assert obs["metadata"]["attributes"]["gen_ai.request.max_tokens"] == "100"


def test_genai_flattened_prompt_and_completion_attributes() -> None:
    s = span(
        "openai.chat",
        attrs={
            "gen_ai.request.model": "gpt-4",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.prompt.1.role": "assistant",
            "gen_ai.prompt.1.content": "yo",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hello",
            "gen_ai.usage.prompt_tokens": 9,
            "gen_ai.usage.completion_tokens": 4,
            "gen_ai.usage.cache_read_input_tokens": 2,
            "llm.usage.total_tokens": 13,
            "traceloop.span.kind": "task",
        },
    )
    obs = only(
        decode_request(export(s, scope="opentelemetry.instrumentation.openai")), "observation"
    )
    assert obs["type"] == "GENERATION"  # model fallback
    assert obs["input"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]
    assert obs["output"] == [{"role": "assistant", "content": "hello"}]
    assert obs["usage_details"] == {"input": 7, "output": 4, "input_cached_tokens": 2}
    attributes = obs["metadata"]["attributes"]
    assert "gen_ai.prompt.0.role" not in attributes
    assert attributes["traceloop.span.kind"] == "task"


def test_generic_usage_aliases_first_in_order_wins_whatever_the_attribute_order() -> None:
    """Of one canonical count's aliases the first in the rule's order wins, in whatever order
    the attributes come; every alias leaves the details, other counts stay (``details.``
    stripped), and a name sent under both prefixes keeps its last value."""
    s = span(
        "llm",
        attrs={
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 50,  # second alias of input: loses to prompt_tokens
            "gen_ai.usage.prompt_tokens": 40,
            "gen_ai.usage.details.cache_read_tokens": 7,  # fourth alias of cache read
            "gen_ai.usage.cache_read_input_tokens": 5,  # second: wins
            "gen_ai.usage.output_tokens": 9,
            "llm.token_count.completion_details.reasoning": 2,
            "gen_ai.usage.total_tokens": 49,
            "gen_ai.usage.details.web_search": 1,
            "gen_ai.usage.tool_tokens": 3,
            "llm.token_count.tool_tokens": 4,
        },
    )
    obs = only(decode_request(export(s, scope="some.instrumentation")), "observation")
    assert obs["usage_details"] == {
        "input": 35,
        "output": 7,
        "total": 49,
        "input_cached_tokens": 5,
        "output_reasoning_tokens": 2,
        "web_search": 1,
        "tool_tokens": 4,
    }


def test_genai_input_messages_get_system_instructions_prepended() -> None:
    s = span(
        "invoke_agent",
        attrs={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.input.messages": '[{"role": "user", "content": "hi"}]',
            "gen_ai.system_instructions": '[{"type": "text", "content": "be nice"}]',
            "gen_ai.output.messages": '[{"role": "assistant", "content": "ok"}]',
        },
    )
    obs = only(decode_request(export(s)), "observation")
    assert obs["type"] == "AGENT"
    assert json.loads(obs["input"]) == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hi"},
    ]
    assert obs["output"] == '[{"role": "assistant", "content": "ok"}]'


def test_openinference_llm_span() -> None:
    s = span(
        "ChatOpenAI",
        attrs={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-3.5-turbo",
            "llm.invocation_parameters": '{"temperature": 0.1, "stream": false}',
            "llm.token_count.prompt": 20,
            "llm.token_count.completion": 8,
            "llm.token_count.total": 28,
            "input.value": '{"messages": ["hi"]}',
            "input.mime_type": "application/json",
            "output.value": "hello there",
            "llm.input_messages.0.message.role": "user",
        },
    )
    for decoded in both(export(s, scope="openinference.instrumentation.langchain")):
        obs = only(decoded, "observation")
        assert obs["type"] == "GENERATION"
        assert obs["model"] == "gpt-3.5-turbo"
        assert obs["model_parameters"] == {"temperature": 0.1, "stream": "false"}
        assert obs["usage_details"] == {"input": 20, "output": 8, "total": 28}
        assert obs["input"] == '{"messages": ["hi"]}' and obs["output"] == "hello there"
        assert only(decoded, "trace")["input"] == '{"messages": ["hi"]}'


def test_openinference_kinds_map_to_types() -> None:
    kinds = {"CHAIN": "CHAIN", "RETRIEVER": "RETRIEVER", "TOOL": "TOOL", "RERANKER": "SPAN"}
    for i, (kind, expected) in enumerate(kinds.items()):
        s = span("x", f"{i + 1:016x}", attrs={"openinference.span.kind": kind})
        assert only(decode_request(export(s)), "observation")["type"] == expected


def test_vercel_ai_sdk_generation_span() -> None:
    s = span(
        "ai.generateText.doGenerate",
        CHILD,
        ROOT,
        {
            "operation.name": "ai.generateText.doGenerate my-fn",
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.telemetry.functionId": "my-fn",
            "ai.model.id": "gpt-4o",
            "ai.model.provider": "openai.chat",
            "ai.prompt.messages": '[{"role":"user","content":"hi"}]',
            "ai.response.text": "Hello!",
            "ai.response.msToFirstChunk": 120.4,
            "ai.usage.promptTokens": 11,
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 3,
            "ai.settings.maxRetries": 2,
            "ai.telemetry.metadata.userId": "u-v",
            "ai.telemetry.metadata.feature": "chat",
            "ai.response.providerMetadata": '{"openai": {"cachedPromptTokens": 4}}',
        },
    )
    for decoded in both(export(s, scope="ai")):
        obs = only(decoded, "observation")
        assert obs["type"] == "GENERATION"
        assert obs["name"] == "my-fn:ai.generateText.doGenerate"
        assert obs["model"] == "gpt-4o"
        assert obs["input"] == '[{"role":"user","content":"hi"}]'
        assert obs["output"] == "Hello!"
        assert obs["usage_details"] == {"input": 7, "output": 3, "input_cached_tokens": 4}
        assert obs["model_parameters"]["maxRetries"] == "2"
        assert obs["model_parameters"]["system"] == "openai.chat"
        assert obs["completion_start_time"] == datetime(
            2023, 11, 14, 22, 13, 20, 244456, tzinfo=UTC
        )
        assert obs["metadata"]["feature"] == "chat"
        trace = only(decoded, "trace")  # userId is a trace attribute
        assert trace["user_id"] == "u-v" and "name" not in trace


def test_vercel_ai_sdk_tool_call_span() -> None:
    s = span(
        "ai.toolCall",
        attrs={
            "operation.name": "ai.toolCall",
            "ai.operationId": "ai.toolCall",
            "ai.toolCall.name": "weather",
            "ai.toolCall.args": '{"city": "Oslo"}',
            "ai.toolCall.result": '{"temp": 3}',
        },
    )
    obs = only(decode_request(export(s, scope="ai")), "observation")
    assert obs["type"] == "TOOL" and obs["name"] == "weather"
    assert obs["input"] == '{"city": "Oslo"}' and obs["output"] == '{"temp": 3}'


def test_every_attribute_value_type_decodes() -> None:
    values = {
        "s": "text",
        "b": True,
        "i": -(2**63),
        "big": 2**63 - 1,
        "d": 1.5,
        "nan": float("nan"),
        "inf": float("inf"),
        "arr": ["x", 1, False, 2.5],
        "nested": [[1, 2], {"k": "v"}],
        "kv": {"a": 1, "b": {"c": ["d"]}},
        "raw": b"\x00\xffhi",
        "empty_arr": [],
    }
    s = span("types", attrs={f"langfuse.observation.metadata.{k}": v for k, v in values.items()})
    for decoded in both(export(s)):
        md = only(decoded, "observation")["metadata"]
        assert md["s"] == "text" and md["b"] is True
        assert md["i"] == -(2**63) and md["big"] == 2**63 - 1
        assert md["d"] == 1.5 and md["nan"] == "NaN" and md["inf"] == "Infinity"
        assert md["arr"] == ["x", 1, False, 2.5]
        assert md["nested"] == [[1, 2], {"k": "v"}]
        assert md["kv"] == {"a": 1, "b": {"c": ["d"]}}
        assert md["raw"] == base64.b64encode(b"\x00\xffhi").decode()  # bytes -> base64
        assert md["empty_arr"] == []


def test_unmapped_attributes_are_kept_as_strings() -> None:
    s = span("x", attrs={"http.status": 200, "flag": True, "list": ["a"], "kv": {"k": 1}})
    attributes = only(decode_request(export(s)), "observation")["metadata"]["attributes"]
    assert attributes == {"http.status": "200", "flag": "true", "list": '["a"]', "kv": '{"k":1}'}


def test_error_status_gives_level_error_and_status_message() -> None:
    s = span("boom", status=Status(code=Status.STATUS_CODE_ERROR, message="it broke"))
    for decoded in both(export(s)):
        obs = only(decoded, "observation")
        assert obs["level"] == "ERROR" and obs["status_message"] == "it broke"


def test_langfuse_level_attribute_wins_over_status() -> None:
    s = span(
        "x",
        attrs={"langfuse.observation.level": " debug "},
        status=Status(code=Status.STATUS_CODE_ERROR, message="m"),
    )
    obs = only(decode_request(export(s)), "observation")
    assert obs["level"] == "DEBUG" and obs["status_message"] == "m"


def test_environment_from_resource_and_release() -> None:
    s = span("x", attrs={})
    resource = {
        "service.name": "svc",
        "service.version": "2.0",
        "deployment.environment.name": "Staging",
        "langfuse.release": "rel-5",
        "langfuse.trace.metadata.region": "eu",
    }
    decoded = decode_request(export(s, resource=resource))
    trace, obs = only(decoded, "trace"), only(decoded, "observation")
    assert trace["environment"] == obs["environment"] == "staging"
    assert trace["version"] == obs["version"] == "2.0"
    assert trace["release"] == "rel-5"
    assert trace["metadata"]["region"] == obs["metadata"]["region"] == "eu"


def test_bad_spans_are_rejected_and_good_ones_kept() -> None:
    good = span("good", ROOT)
    no_trace = Span(span_id=bytes.fromhex(CHILD), name="no-trace", start_time_unix_nano=T0)
    zero_time = span("zero", "1111111111111111", start=0, end=0)
    no_span_id = span("no-span-id", "0000000000000000")
    for decoded in both(export(good, no_trace, zero_time, no_span_id)):
        assert decoded.span_count == 4
        assert list(by_kind(decoded, "observation")) == [ROOT]
        reasons = {e.span_id: e.message for e in decoded.rejected}
        assert set(reasons) == {CHILD, "1111111111111111", "0000000000000000"}
        assert "traceId" in reasons[CHILD]
        assert "startTimeUnixNano" in reasons["1111111111111111"]
        assert "spanId" in reasons["0000000000000000"]


def test_time_beyond_uint64_in_json_is_rejected_alone() -> None:
    data = as_otlp_json(export(span("a", ROOT), span("b", CHILD, ROOT)))
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["endTimeUnixNano"] = "9" * 25
    decoded = decode_json(data)
    assert list(by_kind(decoded, "observation")) == [ROOT]
    assert [(e.trace_id, e.span_id) for e in decoded.rejected] == [(TRACE, CHILD)]
    assert "endTimeUnixNano" in decoded.rejected[0].message


def test_latest_uint64_time_is_kept() -> None:
    obs = only(decode_request(export(span("x", start=T0, end=2**64 - 1))), "observation")
    assert obs["end_time"].year == 2554


def test_missing_start_time_uses_end_time() -> None:
    obs = only(decode_request(export(span("x", start=0, end=T1))), "observation")
    assert obs["start_time"] == obs["end_time"]


def test_json_tolerates_base64_buffer_and_int_array_ids_and_high_low_times() -> None:
    data = as_otlp_json(export(span("a", ROOT), span("b", CHILD, ROOT)))
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = base64.b64encode(bytes.fromhex(TRACE)).decode()
    spans[0]["spanId"] = {"type": "Buffer", "data": list(bytes.fromhex(ROOT))}
    spans[1]["traceId"] = TRACE.upper()
    spans[1]["parentSpanId"] = list(bytes.fromhex(ROOT))
    spans[1]["startTimeUnixNano"] = {"high": T0 >> 32, "low": T0 & 0xFFFFFFFF}
    spans[1]["status"] = {"code": "STATUS_CODE_ERROR"}
    decoded = decode_json(data)
    assert decoded.rejected == []
    obs = by_kind(decoded, "observation")
    assert obs[ROOT]["trace_id"] == TRACE == obs[CHILD]["trace_id"]
    assert obs[CHILD]["parent_observation_id"] == ROOT
    assert obs[CHILD]["start_time"] == obs[ROOT]["start_time"]
    assert obs[CHILD]["level"] == "ERROR"


def test_json_span_with_bad_shape_is_rejected_alone() -> None:
    data = as_otlp_json(export(span("a", ROOT), span("b", CHILD, ROOT)))
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["attributes"] = "not-a-list"
    spans.append({"traceId": "xyz", "spanId": CHILD})
    decoded = decode_json(data)
    assert list(by_kind(decoded, "observation")) == [ROOT]
    assert len(decoded.rejected) == 2 and decoded.span_count == 3


def test_empty_exports_decode_to_nothing() -> None:
    assert decode_json(b"{}").events == []
    assert decode_json({"resourceSpans": []}).span_count == 0
    assert decode_protobuf(b"").events == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"resourceSpans": 5}'])
def test_undecodable_json_raises_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_json(body)


def test_undecodable_protobuf_raises_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        decode_protobuf(b"\xff\xff\xff\xff garbage")
    assert info.value.field == "body"


def test_real_otel_sdk_export_decodes() -> None:
    """Spans made by the OpenTelemetry SDK and encoded by the OTLP exporter's own encoder."""
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("langfuse-sdk", "3.6.0")
    with tracer.start_as_current_span("root") as root:
        root.set_attribute("langfuse.trace.name", "from-sdk")
        with tracer.start_as_current_span("gen") as gen:
            gen.set_attribute("langfuse.observation.type", "generation")
            gen.set_attribute("gen_ai.usage.input_tokens", 3)
    body = encoder.encode_spans(memory.get_finished_spans()).SerializeToString()
    decoded = decode_protobuf(body)
    assert decoded.rejected == [] and decoded.span_count == 2
    assert only(decoded, "trace")["name"] == "from-sdk"
    types = sorted(f["type"] for f in by_kind(decoded, "observation").values())
    assert types == ["GENERATION", "SPAN"]


def test_decode_speed_of_a_realistic_export(capsys: pytest.CaptureFixture[str]) -> None:
    text = "lorem ipsum dolor sit amet " * 38  # ~1 KB
    spans = [
        span(
            f"step-{i}",
            f"{i + 1:016x}",
            None if i == 0 else "0000000000000001",
            {
                "langfuse.observation.type": "generation" if i % 2 else "span",
                "langfuse.observation.input": json.dumps({"prompt": text}),
                "langfuse.observation.output": json.dumps({"text": text}),
                "langfuse.observation.model.name": "gpt-4o",
                "langfuse.observation.usage_details": '{"input": 100, "output": 50}',
                "gen_ai.request.temperature": 0.2,
                "user.id": "u1",
            },
        )
        for i in range(10)
    ]
    body = export(*spans, scope="langfuse-sdk").SerializeToString()
    rounds = 300
    started = time.perf_counter()
    for _ in range(rounds):
        decoded = decode_protobuf(body)
    elapsed = time.perf_counter() - started
    assert decoded.span_count == 10 and not decoded.rejected
    with capsys.disabled():
        print(f"\nOTLP protobuf decode: {len(body)} B/export, {rounds * 10 / elapsed:,.0f} spans/s")


def test_logfire_and_openllmetry_io_and_names() -> None:
    logfire_span = span(
        "agent run",
        "0000000000000001",
        attrs={"logfire.msg": "agent run: hi", "prompt": "hi", "all_messages_events": "[]"},
    )
    traceloop_span = span(
        "workflow.task",
        "0000000000000002",
        attrs={"traceloop.entity.input": '{"a": 1}', "traceloop.entity.output": '{"b": 2}'},
    )
    obs = by_kind(decode_request(export(logfire_span, traceloop_span)), "observation")
    first, second = obs["0000000000000001"], obs["0000000000000002"]
    assert first["name"] == "agent run: hi"
    assert (first["input"], first["output"]) == ("hi", "[]")
    assert (second["input"], second["output"]) == ('{"a": 1}', '{"b": 2}')
    assert second["type"] == "SPAN"


def test_prompt_name_without_version_is_not_linked() -> None:
    s = span("g", attrs={"langfuse.observation.type": "generation", "langfuse.prompt.name": "p"})
    obs = only(decode_request(export(s)), "observation")
    assert "prompt_name" not in obs and "prompt_version" not in obs


def test_span_type_never_carries_generation_fields() -> None:
    s = span("s", attrs={"langfuse.observation.type": "span", "gen_ai.usage.input_tokens": 5})
    obs = only(
        decode_request(export(s, scope="langfuse-sdk", scope_version="3.6.0")), "observation"
    )
    assert obs["type"] == "SPAN" and "usage_details" not in obs


def test_old_python_sdk_generation_sent_as_span_is_a_generation() -> None:
    s = span(
        "g", attrs={"langfuse.observation.type": "span", "langfuse.observation.model.name": "m"}
    )
    resource = {"telemetry.sdk.language": "python"}
    decoded = decode_request(
        export(s, resource=resource, scope="langfuse-sdk", scope_version="3.2.1")
    )
    obs = only(decoded, "observation")
    assert obs["type"] == "GENERATION" and obs["model"] == "m"


def test_python_sdk_3_metadata_json_text_is_decoded() -> None:
    # SDK 3.x sends str and int metadata values as they are, anything else as JSON text.
    attrs = {
        "langfuse.observation.metadata.nested": '{"depth": 1}',
        "langfuse.observation.metadata.ratio": "0.5",
        "langfuse.observation.metadata.flag": "true",
        "langfuse.observation.metadata.count": 3,
        "langfuse.observation.metadata.plain": "visible",
        "langfuse.trace.metadata.labels": '["x", "y"]',
    }
    resource = {"telemetry.sdk.language": "python"}
    decoded = decode_request(
        export(
            span("s", attrs=attrs), resource=resource, scope="langfuse-sdk", scope_version="3.15.0"
        )
    )
    md = only(decoded, "observation")["metadata"]
    assert (md["nested"], md["ratio"], md["flag"]) == ({"depth": 1}, 0.5, True)
    assert (md["count"], md["plain"]) == (3, "visible")
    assert only(decoded, "trace")["metadata"]["labels"] == ["x", "y"]


def test_event_type_has_no_end_time() -> None:
    s = span("e", attrs={"langfuse.observation.type": "event"})
    obs = only(decode_request(export(s)), "observation")
    assert obs["type"] == "EVENT" and "end_time" not in obs


def test_json_int_attribute_as_high_low_pair() -> None:
    data = as_otlp_json(export(span("a", attrs={"n": 1, "arr": [1], "kv": {"k": 1}})))
    s = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    big = 2**40 + 7
    for attr in s["attributes"]:
        if attr["key"] == "n":
            attr["value"] = {"intValue": {"high": big >> 32, "low": big & 0xFFFFFFFF}}
        elif attr["key"] == "arr":  # -1 as a signed protobuf.js Long
            attr["value"]["arrayValue"]["values"][0] = {"intValue": {"high": -1, "low": -1}}
        elif attr["key"] == "kv":
            kv_values = attr["value"]["kvlistValue"]["values"]
            kv_values[0]["value"] = {"intValue": {"high": 0, "low": 5, "unsigned": True}}
    s["events"] = [
        {"name": "e", "timeUnixNano": str(T0), "attributes": [{"key": "x", "value": {}}]}
    ]
    decoded = decode_json(data)
    assert decoded.rejected == []
    attributes = only(decoded, "observation")["metadata"]["attributes"]
    assert attributes["n"] == str(big)
    assert attributes["arr"] == "[-1]"
    assert attributes["kv"] == '{"k":5}'


def test_json_int_attribute_with_broken_pair_rejects_only_its_span() -> None:
    data = as_otlp_json(export(span("a", ROOT), span("b", CHILD, ROOT, attrs={"n": 1})))
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["attributes"][0]["value"] = {"intValue": {"high": "x"}}
    decoded = decode_json(data)
    assert list(by_kind(decoded, "observation")) == [ROOT]
    assert "intValue" in decoded.rejected[0].message


def test_genkit_model_span() -> None:
    genkit_input = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "config": {"temperature": 0.3, "stopSequences": ["x"]},
    }
    genkit_output = {
        "message": {"role": "model", "content": [{"text": "hello"}]},
        "usage": {"inputTokens": 10, "outputTokens": 8, "totalTokens": 18, "thoughtsTokens": 3},
    }
    s = span(
        "googleai/gemini-2.5-flash",
        attrs={
            "genkit:name": "googleai/gemini-2.5-flash",
            "genkit:metadata:subtype": "model",
            "genkit:input": json.dumps(genkit_input),
            "genkit:output": json.dumps(genkit_output),
        },
    )
    for decoded in both(export(s, scope="genkit-tracer")):
        obs = only(decoded, "observation")
        assert obs["type"] == "GENERATION"
        assert obs["model"] == "googleai/gemini-2.5-flash"
        assert obs["input"] == genkit_input["messages"]
        assert obs["output"] == genkit_output["message"]
        assert obs["model_parameters"] == {"temperature": 0.3, "stopSequences": '["x"]'}
        assert obs["usage_details"] == {
            "input": 10,
            "output": 5,
            "total": 18,
            "output_reasoning": 3,
        }
        assert "genkit:input" not in obs["metadata"]["attributes"]


def test_genkit_parameters_fall_back_to_the_request_in_the_output() -> None:
    out = {"request": {"config": {"maxOutputTokens": 64}}, "message": {"role": "model"}}
    s = span(
        "m",
        attrs={
            "genkit:metadata:subtype": "model",
            "genkit:name": "m",
            "genkit:output": json.dumps(out),
        },
    )
    obs = only(decode_request(export(s, scope="genkit-tracer")), "observation")
    assert obs["model_parameters"] == {"maxOutputTokens": 64}
    assert "input" not in obs or obs["input"] is None


def test_flue_tool_span_io() -> None:
    s = span(
        "tool",
        attrs={
            "flue.tool.name": "search",
            "flue.tool.arguments": '{"q": "otel"}',
            "flue.tool.result": "3 hits",
        },
    )
    obs = only(decode_request(export(s, scope="@flue/opentelemetry")), "observation")
    assert obs["type"] == "TOOL"
    assert obs["input"] == {"q": "otel"}
    assert obs["output"] == "3 hits"
    assert "flue.tool.arguments" not in obs["metadata"]["attributes"]


def test_semantic_kernel_prompt_and_completion_events() -> None:
    s = span(
        "chat.completions gpt-4o",
        attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
        events=[
            ("gen_ai.content.prompt", {"gen_ai.prompt": '[{"role":"user","content":"hi"}]'}),
            ("gen_ai.content.completion", {"gen_ai.completion": '[{"role":"assistant"}]'}),
        ],
    )
    for decoded in both(export(s, scope="Microsoft.SemanticKernel.Connectors.OpenAI")):
        obs = only(decoded, "observation")
        assert obs["input"] == '[{"role":"user","content":"hi"}]'
        assert obs["output"] == '[{"role":"assistant"}]'
        assert obs["type"] == "GENERATION"


def test_semantic_kernel_event_without_known_attributes_keeps_the_raw_map() -> None:
    s = span("sk", events=[("gen_ai.content.prompt", {"custom": "x"})])
    obs = only(decode_request(export(s)), "observation")
    assert obs["input"] == {"custom": "x"} and obs.get("output") is None


def test_pydantic_ai_agent_and_tool_spans() -> None:
    agent = span(
        "agent run",
        ROOT,
        attrs={
            "pydantic_ai.all_messages": '[{"role":"user","parts":[{"content":"hi"}]}]',
            "gen_ai.system_instructions": '[{"type":"text","content":"be brief"}]',
            "final_result": "hello",
        },
    )
    tool = span(
        "running tool",
        CHILD,
        ROOT,
        attrs={
            "gen_ai.tool.name": "lookup",
            "tool_arguments": '{"id": 1}',
            "tool_response": "found",
        },
    )
    obs = by_kind(decode_request(export(agent, tool, scope="pydantic-ai")), "observation")
    messages = json.loads(obs[ROOT]["input"])
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1]["role"] == "user"
    assert obs[ROOT]["output"] == "hello"
    assert (obs[CHILD]["input"], obs[CHILD]["output"]) == ('{"id": 1}', "found")


def test_google_adk_cached_tokens_come_from_the_llm_response() -> None:
    response = {"usage_metadata": {"cached_content_token_count": 40}}
    s = span(
        "call_llm",
        attrs={
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 9,
            "gcp.vertex.agent.llm_request": '{"contents": []}',
            "gcp.vertex.agent.llm_response": json.dumps(response),
        },
    )
    obs = only(decode_request(export(s, scope="gcp.vertex.agent")), "observation")
    assert obs["usage_details"]["input"] == 60
    assert obs["usage_details"]["input_cached_tokens"] == 40
    assert obs["usage_details"]["output"] == 9


def test_js_sdk_json_text_io_and_metadata_are_decoded() -> None:
    # The JS SDK sends non-string values as JSON text and strings as they are.
    s = span(
        "agent",
        attrs={
            "langfuse.observation.type": "agent",
            "langfuse.observation.input": '{"question": "rain?"}',
            "langfuse.observation.output": "Light rain.",
            "langfuse.observation.metadata.maxSteps": "4",
            "langfuse.observation.metadata.limits": '{"tokens": 2048}',
            "langfuse.observation.metadata.strategy": "react",
            "langfuse.trace.input": '["q", 1]',
            "langfuse.trace.output": "NaN",
        },
    )
    resource = {"service.name": "svc", "telemetry.sdk.language": "nodejs"}
    for decoded in both(export(s, resource=resource, scope="langfuse-sdk", scope_version="5.11.1")):
        obs, trace = only(decoded, "observation"), only(decoded, "trace")
        assert obs["input"] == {"question": "rain?"} and obs["output"] == "Light rain."
        assert obs["metadata"]["maxSteps"] == 4
        assert obs["metadata"]["limits"] == {"tokens": 2048}
        assert obs["metadata"]["strategy"] == "react"
        assert trace["input"] == ["q", 1]
        assert trace["output"] == "NaN"  # not JSON: kept as text


def test_experiment_attributes_become_the_experiment_fields() -> None:
    attrs = {
        "langfuse.experiment.id": "exp-1",
        "langfuse.experiment.name": "nightly",
        "langfuse.experiment.description": "baseline",
        "langfuse.experiment.dataset.id": "ds-1",
        "langfuse.experiment.item.id": "item-1",
        "langfuse.experiment.item.root_observation_id": CHILD,
        "langfuse.experiment.item.version": "2026-01-21T14:35:42Z",
        "langfuse.experiment.item.expected_output": '{"answer": 42}',
        "langfuse.experiment.metadata": '{"model": "gpt-4o"}',
        "langfuse.experiment.item.metadata.topic": "math",
    }
    for decoded in both(export(span("experiment-item-task", CHILD, ROOT, attrs))):
        obs = only(decoded, "observation")
        assert obs["experiment_id"] == "exp-1"
        assert obs["experiment_item_id"] == "item-1"
        assert obs["experiment_root_observation_id"] == CHILD
        assert obs["experiment"] == {
            "name": "nightly",
            "description": "baseline",
            "datasetId": "ds-1",
            "metadata": {"model": "gpt-4o"},
            "itemMetadata": {"topic": "math"},
            "expectedOutput": {"answer": 42},
            "itemVersion": "2026-01-21T14:35:42Z",
        }
        assert not any(k.startswith("langfuse.experiment") for k in obs["metadata"]["attributes"])


def test_an_experiment_item_version_that_is_not_a_date_is_dropped() -> None:
    attrs = {"langfuse.experiment.id": "e", "langfuse.experiment.item.version": "v2"}
    obs = only(decode_request(export(span("s", CHILD, ROOT, attrs))), "observation")
    assert obs["experiment"] == {} and obs["experiment_id"] == "e"


def test_spans_with_the_same_attribute_names_keep_their_own_values() -> None:
    # What attribute names mean is worked out once per sequence of names (``key_set``); the
    # values are each span's own, and a different order or set of names is worked out anew.
    from tracehouse.ingest import conventions

    names = {
        "langfuse.observation.metadata.step": "",
        "langfuse.trace.metadata.team": "",
        "app.custom": "",
    }
    spans = [
        span(
            f"s{i}",
            span_id=f"{i + 1:016x}",
            parent=ROOT,
            attrs={k: f"v{i}" for k in names},
        )
        for i in range(3)
    ]
    reordered = span(
        "s9",
        span_id=f"{9:016x}",
        parent=ROOT,
        attrs={"app.custom": "x", "langfuse.observation.metadata.step": "y"},
    )
    for decoded in both(export(*spans, reordered)):
        observations = [e.fields for e in decoded.events if e.kind == "observation"]
        traces = [e.fields for e in decoded.events if e.kind == "trace"]
        for i, fields in enumerate(observations[:3]):
            assert fields["metadata"]["step"] == f"v{i}"
            assert fields["metadata"]["attributes"] == {"app.custom": f"v{i}"}
        assert [t["metadata"]["team"] for t in traces[:3]] == ["v0", "v1", "v2"]
        assert observations[3]["metadata"]["step"] == "y"
        assert observations[3]["metadata"]["attributes"] == {"app.custom": "x"}
        assert len(traces) == 3  # the reordered span carries no trace update
    assert 0 < len(conventions._KEY_SETS) <= conventions._KEY_SETS_MAX


def test_the_memo_of_attribute_names_stays_bounded() -> None:
    from tracehouse.ingest import conventions

    for i in range(conventions._KEY_SETS_MAX + 10):
        keys = conventions.key_set({f"gen_ai.prompt.{i}.content": "x", "app.k": 1})
        assert keys.unmapped == ("app.k",)
        assert len(conventions._KEY_SETS) <= conventions._KEY_SETS_MAX


@pytest.mark.parametrize(
    ("attrs", "parameters", "usage"),
    [
        (
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 153,
                "gen_ai.usage.cost": 0.01,
                "gen_ai.usage.flag": True,
                "gen_ai.usage.note": "text",
            },
            {"temperature": 0.2, "max_tokens": 256},
            {"input": 812, "output": 153},
        ),
        (
            {
                "llm.invocation_parameters.top_p": 0.9,
                "llm.token_count.prompt": 10,
                "llm.token_count.completion": 4,
                "llm.token_count.total": 14,
                "other": 1,
            },
            {"top_p": 0.9},
            {"input": 10, "output": 4, "total": 14},
        ),
        (
            {"gen_ai.request.stop": ["a", "b"], "gen_ai.usage.input_tokens": 3},
            {"stop": '["a","b"]'},
            {"input": 3},
        ),
        ({"unrelated": "x"}, None, None),
    ],
)
def test_parameters_and_usage_from_remembered_attribute_names_match_a_fresh_scan(
    attrs: dict[str, Any], parameters: dict[str, Any] | None, usage: dict[str, int] | None
) -> None:
    """map_span hands the span's remembered attribute names (its key set) to the model
    parameter and usage mappers; without them they scan the names themselves."""
    from tracehouse.ingest.conventions import key_set
    from tracehouse.ingest.conventions._model import model_parameters, usage_details
    from tracehouse.ingest.conventions._span import SpanView

    span = SpanView(
        "chat", datetime(2026, 1, 1, tzinfo=UTC), attrs, {}, "openai", "1", {}, [], 0, "", True
    )
    names = key_set(attrs)
    for _ in range(2):  # the second round reads what the key set remembered
        assert model_parameters(span, names) == model_parameters(span) == parameters
        assert usage_details(span, names) == usage_details(span) == usage


@pytest.mark.parametrize(
    "attrs",
    [
        {"langfuse.observation.input": '{"q": 1}', "langfuse.observation.output": "a"},
        {"gcp.vertex.agent.llm_request": "{}", "gcp.vertex.agent.tool_call_args": '{"x": 1}'},
        {"prompt": "p", "all_messages_events": "[]"},
        {"lk.user_transcript": "hello"},
        {"mlflow.spanInputs": '{"a": 1}', "mlflow.spanOutputs": "b"},
        {"traceloop.entity.input": "in", "traceloop.entity.output": "out", "input.value": "x"},
        {"input.value": "question", "output.value": "answer", "input": "plain"},
        {"input": "plain in", "output": "plain out"},
        {"events": '[{"event.name": "gen_ai.choice", "message": "m"}]'},
        {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi"},
        {"gen_ai.completion.0.content": "yo", "gen_ai.request.model": "m"},
        {"gen_ai.input.messages": "[]", "gen_ai.output.messages": "[]"},
        {"nothing": "here"},
    ],
)
def test_io_from_remembered_attribute_names_matches_a_fresh_probe(attrs: dict[str, Any]) -> None:
    """With the span's key set, observation_io skips the probes none of whose keys the span
    has; the answer is the one probing everything gives."""
    from tracehouse.ingest.conventions import key_set
    from tracehouse.ingest.conventions._io import observation_io
    from tracehouse.ingest.conventions._span import SpanView

    span = SpanView(
        "s", datetime(2026, 1, 1, tzinfo=UTC), attrs, {}, "some.scope", "1", {}, [], 0, "", True
    )
    names = key_set(attrs)
    expected = observation_io(span)
    for _ in range(2):
        assert observation_io(span, names) == expected
    if attrs != {"nothing": "here"}:
        assert expected != (None, None), attrs  # each case finds something
