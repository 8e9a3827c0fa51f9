"""Plain OpenTelemetry clients against a real `tracehouse serve`.

The official ``opentelemetry-sdk`` with the OTLP/HTTP protobuf exporter
(``opentelemetry-exporter-otlp-proto-http``), unchanged, posts to
``/api/public/otel/v1/traces`` with Basic auth, through its own ``TracerProvider`` (never the
global one). The spans carry the attributes instrumentations really set: the OTel GenAI semantic
conventions (current and older names, attributes and span events) and OpenInference. Everything
is read back through the HTTP API, validated against Langfuse's OpenAPI contract.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from tests.compat.conftest import Server

pytestmark = pytest.mark.compat

OTLP_PATH = "/api/public/otel/v1/traces"


class _Recorded(SpanExporter):
    """Delegates to the real exporter and remembers what each export returned."""

    def __init__(self, exporter: OTLPSpanExporter) -> None:
        self.exporter = exporter
        self.results: list[SpanExportResult] = []
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.exporter.export(spans)
        self.results.append(result)
        self.spans += len(spans)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


@contextmanager
def otel_tracer(
    server: Server,
    scope: str,
    *,
    resource: dict[str, Any] | None = None,
    compression: Compression | None = None,
    batch: bool = False,
) -> Iterator[tuple[Tracer, _Recorded]]:
    """A tracer of a private TracerProvider exporting to the server; flushed on exit."""
    credentials = f"{server.public_key}:{server.secret_key}".encode()
    exporter = _Recorded(
        OTLPSpanExporter(
            endpoint=server.url + OTLP_PATH,
            headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
            compression=compression,
            timeout=30,
        )
    )
    provider = TracerProvider(resource=Resource.create(resource or {}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield provider.get_tracer(scope, "1.4.0"), exporter
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()
    assert exporter.results, "nothing was exported"
    assert set(exporter.results) == {SpanExportResult.SUCCESS}, exporter.results


def hex_trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def read_trace(server: Server, trace_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The trace and its observations by id, as the API returns them."""
    trace = server.get(f"/api/public/traces/{trace_id}").json()
    return trace, {o["id"]: o for o in trace["observations"]}


def run_id() -> str:
    return uuid.uuid4().hex[:10]


# ------------------------------------------------------------------------------------------
# OTel GenAI semantic conventions
# ------------------------------------------------------------------------------------------


def test_genai_semconv_chat_span_becomes_a_generation_under_its_parent(server: Server) -> None:
    run = run_id()
    question = f"Hauptstadt von Frankreich? Grüße, {run}"
    input_messages = [{"role": "user", "parts": [{"type": "text", "content": question}]}]
    instructions = [{"type": "text", "content": "You answer briefly."}]
    output_messages = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris."}],
            "finish_reason": "stop",
        }
    ]
    resource = {"service.name": f"genai-app-{run}", "service.version": "2.1.0"}
    with (
        otel_tracer(server, "genai.example", resource=resource) as (tracer, _),
        tracer.start_as_current_span(f"answer-question-{run}") as root,
        tracer.start_as_current_span("chat gpt-4o") as chat,
    ):
        chat.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.request.top_p": 1.0,
                "gen_ai.usage.input_tokens": 42,
                "gen_ai.usage.output_tokens": 8,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.system_instructions": json.dumps(instructions),
                "gen_ai.input.messages": json.dumps(input_messages, ensure_ascii=False),
                "gen_ai.output.messages": json.dumps(output_messages),
            }
        )
    trace, observations = read_trace(server, hex_trace_id(root))

    assert trace["name"] == f"answer-question-{run}"
    assert trace["version"] == "2.1.0"
    assert set(observations) == {hex_span_id(root), hex_span_id(chat)}
    parent = observations[hex_span_id(root)]
    assert parent["type"] == "SPAN"
    assert parent["parentObservationId"] is None
    # The child is exported before its parent ends; the root span still dates the trace.
    assert trace["timestamp"] == parent["startTime"]

    gen = observations[hex_span_id(chat)]
    assert gen["type"] == "GENERATION"
    assert gen["name"] == "chat gpt-4o"
    assert gen["parentObservationId"] == hex_span_id(root)
    assert gen["model"] == "gpt-4o-2024-08-06"  # the response model wins over the request's
    assert gen["modelParameters"] == {"temperature": 0.2, "max_tokens": 256, "top_p": 1.0}
    assert gen["usageDetails"] == {"input": 42, "output": 8, "total": 50}
    assert gen["usage"]["input"] == 42
    assert gen["usage"]["output"] == 8
    assert gen["usage"]["total"] == 50
    # Message attributes are JSON text on the wire and stay text. The system instructions go
    # first, re-serialised as JavaScript would (compact, non-ASCII kept), as Langfuse does.
    system_message = {"role": "system", "content": "You answer briefly."}
    assert gen["input"] == json.dumps(
        [system_message, *input_messages], ensure_ascii=False, separators=(",", ":")
    )
    assert json.loads(gen["output"]) == output_messages
    assert gen["startTime"] >= parent["startTime"]
    assert gen["endTime"] <= parent["endTime"]
    attributes = gen["metadata"]["attributes"]
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.response.finish_reasons"] == '["stop"]'
    assert attributes["gen_ai.request.top_p"] == "1"  # JavaScript's text of the double 1.0
    assert "gen_ai.input.messages" not in attributes  # consumed as input
    assert gen["metadata"]["resourceAttributes"]["service.name"] == f"genai-app-{run}"

    listed = server.get(
        "/api/public/observations", params={"traceId": trace["id"], "type": "GENERATION"}
    ).json()
    assert [o["id"] for o in listed["data"]] == [gen["id"]]
    assert listed["data"][0]["model"] == "gpt-4o-2024-08-06"


def test_older_genai_names_and_message_events_are_understood(server: Server) -> None:
    run = run_id()
    with (
        otel_tracer(server, "opentelemetry.instrumentation.openai") as (tracer, _),
        tracer.start_as_current_span(f"workflow-{run}") as root,
    ):
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.request.max_tokens": 100,
                    "gen_ai.request.top_p": 0.9,
                    "gen_ai.usage.prompt_tokens": 17,
                    "gen_ai.usage.completion_tokens": 5,
                }
            )
            chat.add_event("gen_ai.system.message", {"content": "Be terse."})
            chat.add_event("gen_ai.user.message", {"content": f"Say hi {run}"})
            chat.add_event(
                "gen_ai.choice",
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": json.dumps({"role": "assistant", "content": "Hi."}),
                },
            )
        with tracer.start_as_current_span("text_completion davinci") as completion:
            completion.set_attributes(
                {
                    "gen_ai.operation.name": "text_completion",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "davinci-002",
                    "gen_ai.usage.input_tokens": 3,
                    "gen_ai.usage.prompt_tokens": 4,  # older name wins, as in Langfuse
                    "gen_ai.usage.output_tokens": 2,
                }
            )
    trace, observations = read_trace(server, hex_trace_id(root))

    assert trace["name"] == f"workflow-{run}"
    chat_obs = observations[hex_span_id(chat)]
    assert chat_obs["type"] == "GENERATION"
    assert chat_obs["parentObservationId"] == hex_span_id(root)
    assert chat_obs["model"] == "gpt-4o-mini"
    assert chat_obs["modelParameters"] == {"max_tokens": 100, "top_p": 0.9}
    assert chat_obs["usageDetails"] == {"input": 17, "output": 5, "total": 22}
    assert chat_obs["input"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": f"Say hi {run}"},
    ]
    assert chat_obs["output"] == {
        "index": 0,
        "finish_reason": "stop",
        "message": json.dumps({"role": "assistant", "content": "Hi."}),
    }
    assert chat_obs["metadata"]["attributes"]["gen_ai.system"] == "openai"

    completion_obs = observations[hex_span_id(completion)]
    assert completion_obs["type"] == "GENERATION"
    assert completion_obs["model"] == "davinci-002"
    assert completion_obs["usageDetails"] == {"input": 4, "output": 2, "total": 6}


# ------------------------------------------------------------------------------------------
# OpenInference
# ------------------------------------------------------------------------------------------


def test_openinference_spans_map_to_types_model_usage_and_trace_identity(
    server: Server,
) -> None:
    run = run_id()
    session_id, user_id = f"oi-session-{run}", f"oi-user-{run}"
    question = {"question": f"What is OpenInference? {run}"}
    with (
        otel_tracer(
            server, "openinference.instrumentation.langchain", resource={"service.name": "rag-app"}
        ) as (tracer, _),
        tracer.start_as_current_span(f"RunnableSequence-{run}") as chain,
    ):
        chain.set_attributes(
            {
                "openinference.span.kind": "CHAIN",
                "input.value": json.dumps(question),
                "input.mime_type": "application/json",
                "output.value": "A tracing convention.",
                "output.mime_type": "text/plain",
                "session.id": session_id,
                "user.id": user_id,
                "metadata": json.dumps({"team": "search", "attempt": 1}),
                "tag.tags": ["rag", f"run-{run}"],
            }
        )
        with tracer.start_as_current_span("VectorStoreRetriever") as retriever:
            retriever.set_attributes(
                {
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": question["question"],
                    "retrieval.documents.0.document.id": "doc-1",
                    "retrieval.documents.0.document.content": "OpenInference is ...",
                    "retrieval.documents.0.document.score": 0.87,
                }
            )
        with tracer.start_as_current_span("ChatOpenAI") as llm:
            llm.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.provider": "openai",
                    "llm.invocation_parameters": json.dumps(
                        {"temperature": 0.0, "max_tokens": 64, "stop": ["\n\n"]}
                    ),
                    "llm.token_count.prompt": 120,
                    "llm.token_count.completion": 12,
                    "llm.token_count.total": 132,
                    "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": "Use the context.",
                    "llm.input_messages.1.message.role": "user",
                    "llm.input_messages.1.message.content": question["question"],
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "A tracing convention.",
                }
            )
        with tracer.start_as_current_span("search_docs") as tool:
            tool.set_attributes(
                {
                    "openinference.span.kind": "TOOL",
                    "tool.name": "search_docs",
                    "input.value": json.dumps({"query": "openinference"}),
                    "input.mime_type": "application/json",
                    "output.value": "3 hits",
                }
            )
        with tracer.start_as_current_span("OpenAIEmbeddings") as embedding:
            embedding.set_attributes(
                {
                    "openinference.span.kind": "EMBEDDING",
                    "llm.model_name": "text-embedding-3-small",
                    "llm.token_count.prompt": 9,
                    "embedding.embeddings.0.embedding.text": "openinference",
                }
            )
        with tracer.start_as_current_span("planner") as agent:
            agent.set_attribute("openinference.span.kind", "AGENT")
    trace, observations = read_trace(server, hex_trace_id(chain))

    assert trace["name"] == f"RunnableSequence-{run}"
    assert trace["sessionId"] == session_id
    assert trace["userId"] == user_id
    assert sorted(trace["tags"]) == sorted(["rag", f"run-{run}"])
    assert trace["input"] == json.dumps(question)  # the root span's I/O is the trace's
    assert trace["output"] == "A tracing convention."

    types = {obs_id: o["type"] for obs_id, o in observations.items()}
    assert types == {
        hex_span_id(chain): "CHAIN",
        hex_span_id(retriever): "RETRIEVER",
        hex_span_id(llm): "GENERATION",
        hex_span_id(tool): "TOOL",
        hex_span_id(embedding): "EMBEDDING",
        hex_span_id(agent): "AGENT",
    }
    for span in (retriever, llm, tool, embedding, agent):
        assert observations[hex_span_id(span)]["parentObservationId"] == hex_span_id(chain)

    gen = observations[hex_span_id(llm)]
    assert gen["model"] == "gpt-4o-mini"
    assert gen["modelParameters"] == {"temperature": 0.0, "max_tokens": 64, "stop": '["\\n\\n"]'}
    assert gen["usageDetails"] == {"input": 120, "output": 12, "total": 132}
    assert (gen["usage"]["input"], gen["usage"]["output"], gen["usage"]["total"]) == (120, 12, 132)
    assert gen["input"] == [
        {"message": {"role": "system", "content": "Use the context."}},
        {"message": {"role": "user", "content": question["question"]}},
    ]
    assert gen["output"] == [{"message": {"role": "assistant", "content": "A tracing convention."}}]
    assert not any(k.startswith("llm.input_messages") for k in gen["metadata"]["attributes"])

    chain_obs = observations[hex_span_id(chain)]
    assert chain_obs["input"] == json.dumps(question)
    assert chain_obs["output"] == "A tracing convention."
    assert chain_obs["metadata"]["attributes"]["input.mime_type"] == "application/json"
    assert chain_obs["metadata"]["attributes"]["metadata"] == json.dumps(
        {"team": "search", "attempt": 1}
    )
    assert observations[hex_span_id(retriever)]["input"] == question["question"]
    assert observations[hex_span_id(tool)]["output"] == "3 hits"
    emb = observations[hex_span_id(embedding)]
    assert emb["model"] == "text-embedding-3-small"
    assert emb["usageDetails"] == {"input": 9, "total": 9}

    session = server.get(f"/api/public/sessions/{session_id}").json()
    assert [t["id"] for t in session["traces"]] == [trace["id"]]
    by_user = server.get("/api/public/traces", params={"userId": user_id}).json()
    assert [t["id"] for t in by_user["data"]] == [trace["id"]]


def test_openinference_session_on_a_child_span_reaches_the_trace(server: Server) -> None:
    run = run_id()
    with (
        otel_tracer(server, "openinference.instrumentation.openai") as (tracer, _),
        tracer.start_as_current_span(f"agent-{run}") as root,
    ):
        root.set_attribute("openinference.span.kind", "AGENT")
        with tracer.start_as_current_span("ChatCompletion") as llm:
            llm.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o",
                    "session.id": f"child-session-{run}",
                    "user.id": f"child-user-{run}",
                    "input.value": "hi",
                    "output.value": "hello",
                }
            )
    trace, observations = read_trace(server, hex_trace_id(root))
    assert trace["name"] == f"agent-{run}"  # a child's trace update does not rename the trace
    assert trace["sessionId"] == f"child-session-{run}"
    assert trace["userId"] == f"child-user-{run}"
    assert trace["input"] is None  # only the root span's I/O becomes the trace's
    assert trace["timestamp"] == observations[hex_span_id(root)]["startTime"]
    assert observations[hex_span_id(llm)]["input"] == "hi"


# ------------------------------------------------------------------------------------------
# Transport: gzip, batching
# ------------------------------------------------------------------------------------------


def test_gzip_compressed_batched_export_is_stored_completely(server: Server) -> None:
    run = run_id()
    big_text = ("lorem ipsum dolor sit amet " * 80)[:2000]
    spans: list[Span] = []
    with (
        otel_tracer(server, "gzip.example", compression=Compression.Gzip, batch=True) as (
            tracer,
            exporter,
        ),
        tracer.start_as_current_span(f"gzip-root-{run}") as root,
    ):
        for i in range(24):
            with tracer.start_as_current_span(f"step-{i}") as step:
                step.set_attributes(
                    {
                        "langfuse.observation.type": "generation" if i % 3 == 0 else "span",
                        "langfuse.observation.input": f"{i}: {big_text}",
                        "langfuse.observation.output": json.dumps({"i": i, "text": big_text}),
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 100 + i,
                        "gen_ai.usage.output_tokens": i,
                    }
                )
                spans.append(step)
    assert exporter.spans == 25
    trace, observations = read_trace(server, hex_trace_id(root))

    assert trace["name"] == f"gzip-root-{run}"
    assert len(observations) == 25
    for i, span in enumerate(spans):
        obs = observations[hex_span_id(span)]
        assert obs["name"] == f"step-{i}"
        assert obs["parentObservationId"] == hex_span_id(root)
        assert obs["input"] == f"{i}: {big_text}"
        assert obs["output"] == {"i": i, "text": big_text}  # Langfuse I/O JSON text: decoded
        if i % 3 == 0:
            assert obs["type"] == "GENERATION"
            assert obs["model"] == "gpt-4o"
            assert obs["usageDetails"] == {"input": 100 + i, "output": i, "total": 100 + 2 * i}
        else:
            assert obs["type"] == "SPAN"
            assert obs["usageDetails"] == {}


# ------------------------------------------------------------------------------------------
# Status, unmapped attributes, resource
# ------------------------------------------------------------------------------------------


def test_error_status_unmapped_attributes_and_resource_are_kept(server: Server) -> None:
    run = run_id()
    resource = {
        "service.name": f"billing-{run}",
        "service.namespace": "payments",
        "deployment.environment.name": "Staging",
        "host.cores": 8,
    }
    with (
        otel_tracer(server, "billing.worker", resource=resource) as (tracer, _),
        tracer.start_as_current_span(f"charge-{run}") as root,
    ):
        root.set_attributes(
            {
                "http.request.method": "POST",
                "http.response.status_code": 502,
                "retry.enabled": True,
                "charge.amount": 12.5,
                "charge.items": ["grüße", "日本"],
                "charge.attempts": [1, 2, 3],
                "charge.ratio": 1.0,
                "charge.weights": [0.5, 2.0],
            }
        )
        with tracer.start_as_current_span("call-gateway") as failing:
            failing.set_attribute("peer.service", "gateway")
            failing.record_exception(TimeoutError("gateway timed out"))
            failing.set_status(Status(StatusCode.ERROR, "gateway timed out after 30 s"))
        with tracer.start_as_current_span("audit") as ok:
            ok.set_status(Status(StatusCode.OK))
    trace, observations = read_trace(server, hex_trace_id(root))

    failed = observations[hex_span_id(failing)]
    assert failed["level"] == "ERROR"
    assert failed["statusMessage"] == "gateway timed out after 30 s"
    assert failed["metadata"]["attributes"] == {"peer.service": "gateway"}
    fine = observations[hex_span_id(ok)]
    assert (fine["level"], fine["statusMessage"]) == ("DEFAULT", None)

    root_obs = observations[hex_span_id(root)]
    assert root_obs["level"] == "DEFAULT"
    # Unmapped attributes are kept, each as text (non-strings as JSON), as Langfuse does.
    assert root_obs["metadata"]["attributes"] == {
        "http.request.method": "POST",
        "http.response.status_code": "502",
        "retry.enabled": "true",
        "charge.amount": "12.5",
        "charge.items": '["grüße","日本"]',
        "charge.attempts": "[1,2,3]",
        "charge.ratio": "1",
        "charge.weights": "[0.5,2]",
    }
    for obs in (root_obs, failed, trace):
        resource_attributes = obs["metadata"]["resourceAttributes"]
        assert resource_attributes["service.name"] == f"billing-{run}"
        assert resource_attributes["service.namespace"] == "payments"
        assert resource_attributes["host.cores"] == 8
        assert resource_attributes["telemetry.sdk.name"] == "opentelemetry"
        assert obs["metadata"]["scope"]["name"] == "billing.worker"
        assert obs["metadata"]["scope"]["version"] == "1.4.0"
        assert obs["environment"] == "staging"
    assert trace["metadata"]["attributes"] == root_obs["metadata"]["attributes"]

    errors = server.get(
        "/api/public/observations", params={"traceId": trace["id"], "level": "ERROR"}
    ).json()
    assert [o["id"] for o in errors["data"]] == [failed["id"]]
    listed = server.get(
        "/api/public/traces", params={"name": f"charge-{run}", "environment": "staging"}
    ).json()
    assert [t["id"] for t in listed["data"]] == [trace["id"]]
