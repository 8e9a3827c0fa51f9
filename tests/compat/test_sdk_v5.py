"""The newest Langfuse Python SDK (5.x), unchanged, against a real `tracehouse serve`.

The SDK runs as a subprocess of the main environment's python (it is a dev dependency), so each
script has its own OpenTelemetry and SDK state. It exports OTLP/protobuf spans (gzip) to
/api/public/otel/v1/traces and posts its scores as a list to /api/public/scores. Everything is
read back through tracehouse's HTTP API (checked against Langfuse's OpenAPI contract) and through
the SDK's own API client (`langfuse.api.observations.get_many`, `langfuse.api.scores.get_many`).

The SDK sends input, output and (from 5.0) every metadata value as JSON text; tracehouse decodes
them on the way in, so the REST API returns the objects the script passed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import (
    Server,
    assert_no_sdk_errors,
    by_id,
    run_sdk_script,
    sdk_script,
)

pytestmark = pytest.mark.compat

PYTHON = Path(sys.executable)
RUN = uuid.uuid4().hex[:10]
ENV = f"v5-ctx-{RUN}"  # constructor argument
ENV_DECO = f"v5-deco-{RUN}"  # LANGFUSE_TRACING_ENVIRONMENT
ENV_PROPAGATED = f"v5-prop-{RUN}"  # propagate_attributes(environment=...)
SESSION = f"v5-session-{RUN}"
USER = f"v5-user-{RUN}"
# The observations of the CONTEXT script's main trace, by their key in its "ids".
CONTEXT_OBSERVATIONS = (
    "root", "agent", "tool", "chain", "retriever", "evaluator", "guardrail",
    "embedding", "gen", "inner", "event",
)  # fmt: skip

CONTEXT = textwrap.dedent(
    """
    import datetime as dt, json, time
    from opentelemetry import trace as otel_trace
    from langfuse import Langfuse, propagate_attributes
    from langfuse.api import CreateScoreRequest

    lf = Langfuse(environment=ENV, release="rel-5.0")
    out = {"auth": lf.auth_check()}
    ids = out["ids"] = {}

    with lf.start_as_current_observation(
        as_type="span", name="v5-root", input={"question": "hi?"},
        metadata={"team": "core", "nested": {"depth": 1}, "count": 3, "flag": True,
                  "digits": "123"},
    ) as root:
        with propagate_attributes(
            user_id=USER, session_id=SESSION, tags=["beta", "alpha", RUN],
            metadata={"tenant": "acme", "shard": 7}, version="v7", trace_name=TRACE_NAME,
        ):
            lf.set_current_trace_as_public()
            for kind in ("agent", "tool", "chain", "retriever", "evaluator", "guardrail"):
                with lf.start_as_current_observation(
                    as_type=kind, name=kind + "-step", input={"kind": kind}
                ) as obs:
                    obs.update(output=kind + "-out")
                    ids[kind] = obs.id
            with lf.start_as_current_observation(
                as_type="embedding", name="embed", model="text-embedding-3-small",
                input="embed me", usage_details={"input": 8},
            ) as emb:
                ids["embedding"] = emb.id
            with lf.start_as_current_observation(
                as_type="generation", name="chat", model="gpt-4o",
                model_parameters={"temperature": 0.2, "max_tokens": 256},
                input=[{"role": "user", "content": "hi?"}], metadata={"provider": "openai"},
            ) as gen:
                time.sleep(0.02)  # the model "thinks", then streams
                cst = dt.datetime.now(dt.timezone.utc)
                time.sleep(0.03)
                lf.update_current_generation(
                    output={"role": "assistant", "content": "hello"},
                    usage_details={"input": 11, "output": 5, "input_cached_tokens": 2},
                    cost_details={"input": 0.0011, "output": 0.0005},
                    completion_start_time=cst,
                )
                lf.score_current_span(name="relevance", value=0.9, comment="good")
                gen.score(name="tone", value="friendly", data_type="CATEGORICAL")
                ids["gen"] = gen.id
                out["cst"] = cst.isoformat()
            with lf.start_as_current_observation(name="inner", input="inner-in") as inner:
                lf.update_current_span(
                    output="inner-out", metadata={"extra": True}, level="WARNING",
                    status_message="slowish",
                )
                ids["inner"] = inner.id
                ids["event"] = lf.create_event(
                    name="checkpoint", input={"at": "middle"}, level="DEBUG"
                ).id
            lf.score_current_trace(name="thumbs", value=1, data_type="BOOLEAN")
            root.score_trace(name="overall", value=0.75)
        root.update(output={"answer": "hello"})
        ids["root"] = root.id
        trace_id = out["trace"] = lf.get_current_trace_id()

    lf.create_score(
        name="external", value=0.5, trace_id=trace_id, comment="via create_score",
        metadata={"source": "test"},
    )
    lf.create_score(name="session-score", value=1.0, session_id=SESSION)

    # A request-scoped environment and a trace id derived from a seed.
    seeded = out["seeded_trace"] = Langfuse.create_trace_id(seed=RUN)
    with propagate_attributes(environment=ENV_PROPAGATED):
        with lf.start_as_current_observation(
            name="seeded-root", trace_context={"trace_id": seeded}
        ) as seeded_root:
            seeded_root.score(name="seeded-score", value=2.0)
            ids["seeded_root"] = seeded_root.id

    # A third-party OTel span that only gets its trace metadata by propagation: its JSON-encoded
    # metadata values are recognised by the exporter's SDK headers, not by its scope.
    with propagate_attributes(metadata={"vendor": "acme", "tier": 2}, user_id=USER):
        tracer = otel_trace.get_tracer("acme.llm")
        with tracer.start_as_current_span(
            "acme-call",
            attributes={"gen_ai.request.model": "acme-1", "gen_ai.usage.input_tokens": 4,
                        "gen_ai.usage.output_tokens": 2},
        ) as third:
            ctx = third.get_span_context()
            out["third_trace"] = format(ctx.trace_id, "032x")
            ids["third"] = format(ctx.span_id, "016x")

    lf.flush()

    # The SDK's own score client: a list of scores is one request.
    accepted = lf.api.scores.create(request=[
        CreateScoreRequest(name="batch-a", value=1.0, trace_id=trace_id),
        CreateScoreRequest(name="batch-b", value="yes", trace_id=trace_id,
                           data_type="CATEGORICAL"),
    ])
    out["batch_accepted"] = [type(accepted).__name__, getattr(accepted, "message", None)]
    partial = lf.api.scores.create(request=[
        CreateScoreRequest(name="batch-c", value=0.25, trace_id=trace_id),
        CreateScoreRequest(name="batch-bad", value="not a number", trace_id=trace_id,
                           data_type="NUMERIC"),
    ])
    out["batch_partial"] = [
        type(partial).__name__, partial.accepted, partial.rejected,
        [e.message for e in partial.errors],
    ]
    lf.shutdown()
    print(json.dumps(out))
    """
)

DECORATORS = textwrap.dedent(
    """
    import asyncio, json
    from langfuse import get_client, observe, propagate_attributes

    lf = get_client()
    ids = {}

    @observe(as_type="generation", name="fake-llm")
    def llm(prompt):
        lf.update_current_generation(
            model="gpt-4o-mini", usage_details={"input": 3, "output": 2},
            model_parameters={"temperature": 0}, metadata={"decorated": True},
        )
        ids["llm"] = lf.get_current_observation_id()
        return prompt.upper()

    @observe(as_type="tool")
    def rerank(docs):
        ids["rerank"] = lf.get_current_observation_id()
        return sorted(docs)

    @observe(as_type="retriever")
    def retrieve(q):
        ids["retrieve"] = lf.get_current_observation_id()
        lf.update_current_span(metadata={"hits": 2}, level="WARNING")
        return rerank(["doc-b", "doc-a"])

    @observe()
    def tokens(n):
        ids["tokens"] = lf.get_current_observation_id()
        for i in range(n):
            yield "t%d" % i

    @observe(capture_input=False, capture_output=False)
    def private(secret):
        ids["private"] = lf.get_current_observation_id()
        return secret[::-1]

    @observe()
    def pipeline(question):
        ids["trace"] = lf.get_current_trace_id()
        ids["pipeline"] = lf.get_current_observation_id()
        with propagate_attributes(
            user_id=USER, session_id=SESSION, tags=["decorated"],
            metadata={"via": "observe"}, version="d1", trace_name="decorated-pipeline",
        ):
            docs = retrieve(question)
            answer = llm(question + " " + " ".join(docs))
            streamed = "".join(tokens(3))
            private("hush")
        lf.score_current_trace(name="deco-score", value=0.5)
        return {"answer": answer, "streamed": streamed}

    @observe(name="async-step", as_type="agent")
    async def async_step(x):
        await asyncio.sleep(0)
        ids["async_step"] = lf.get_current_observation_id()
        return x * 2

    @observe()
    async def numbers(n):
        ids["numbers"] = lf.get_current_observation_id()
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    @observe(name="async-root")
    async def async_root():
        ids["async_trace"] = lf.get_current_trace_id()
        ids["async_root"] = lf.get_current_observation_id()
        doubled = await async_step(21)
        items = [i async for i in numbers(3)]
        return {"doubled": doubled, "items": items}

    out = pipeline("what?")
    async_out = asyncio.run(async_root())
    lf.flush()
    ids.update(out=out, async_out=async_out)
    print(json.dumps(ids))
    """
)

SDK_READ = textwrap.dedent(
    """
    import json
    from langfuse import Langfuse

    lf = Langfuse()
    ALL = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"

    def observation(o):
        return {
            "id": o.id, "trace_id": o.trace_id, "parent": o.parent_observation_id,
            "type": o.type, "name": o.name, "level": o.level and o.level.value,
            "status_message": o.status_message, "version": o.version,
            "environment": o.environment, "public": o.public, "user_id": o.user_id,
            "session_id": o.session_id, "is_root": o.is_root_observation,
            "input": o.input, "output": o.output, "metadata": o.metadata, "model": o.model,
            "model_parameters": o.model_parameters, "usage_details": o.usage_details,
            "cost_details": o.cost_details, "total_cost": o.total_cost,
            "cst": o.completion_start_time and o.completion_start_time.isoformat(),
            "latency": o.latency, "ttft": o.time_to_first_token,
            "tags": getattr(o, "tags", None), "release": getattr(o, "release", None),
            "trace_name": getattr(o, "trace_name", None),
        }

    def ids(page):
        return sorted(o.id for o in page.data)

    def score(s):
        subject = s.subject
        return {
            "id": s.id, "name": s.name, "data_type": s.data_type, "value": s.value,
            "comment": s.comment, "metadata": s.metadata, "environment": s.environment, "source": s.source.value,
            "subject": subject and {"kind": subject.kind, "id": subject.id,
                                    "trace_id": getattr(subject, "trace_id", None)},
        }

    out = {"health": lf.api.health.health().status}
    project = lf.api.projects.get().data[0]
    out["project"] = [project.id, project.name]
    page = lf.api.observations.get_many(trace_id=TRACE, fields=ALL, limit=100)
    out["observations"] = [observation(o) for o in page.data]
    out["cursor"] = page.meta.cursor
    out["default_fields"] = observation(
        lf.api.observations.get_many(trace_id=TRACE, limit=1, is_root_observation=True).data[0]
    )
    out["by_user"] = ids(lf.api.observations.get_many(user_id=USER, limit=100))
    out["by_session"] = ids(lf.api.observations.get_many(session_id=SESSION, limit=100))
    out["by_env_generations"] = ids(
        lf.api.observations.get_many(environment=ENV, type="GENERATION", limit=100)
    )
    out["by_deco_env"] = ids(lf.api.observations.get_many(environment=ENV_DECO, limit=100))
    out["roots"] = ids(
        lf.api.observations.get_many(trace_id=TRACE, is_root_observation=True, limit=100)
    )
    out["scores"] = [
        score(s) for s in lf.api.scores.get_many(trace_id=TRACE, fields="details,subject").data
    ]
    out["session_scores"] = [
        score(s) for s in lf.api.scores.get_many(session_id=SESSION, fields="subject").data
    ]
    print(json.dumps(out, default=str))
    """
)


MASKING = textwrap.dedent(
    """
    import json, re
    from langfuse import Langfuse, observe

    def mask(data, **kwargs):
        if isinstance(data, str):
            if "BOOM" in data:
                raise ValueError("this one cannot be masked")
            return re.sub(r"sk-[A-Za-z0-9]+", "[REDACTED]", data)
        if isinstance(data, dict):
            return {k: mask(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):  # @observe captures positional args as a tuple
            return [mask(v) for v in data]
        return data

    lf = Langfuse(mask=mask)
    ids = {}

    @observe()
    def call_api(key, query):
        ids["decorated"] = lf.get_current_observation_id()
        return "used " + key

    with lf.start_as_current_observation(
        name="masked-root", input={"api_key": "sk-abc123", "query": "hello"},
        metadata={"token": "sk-meta9", "plain": "visible"},
    ) as root:
        with lf.start_as_current_observation(
            as_type="generation", name="masked-gen", model="m", input="call with sk-zzz1"
        ) as gen:
            gen.update(output=["answer", "for sk-yyy2"])
            ids["gen"] = gen.id
        with lf.start_as_current_observation(name="mask-fails", input="BOOM sk-boom3") as bad:
            ids["bad"] = bad.id
        call_api("sk-arg4", query="plain")
        root.update(output={"echo": "sk-out5"})
        ids["root"] = root.id
        ids["trace"] = lf.get_current_trace_id()
    lf.shutdown()
    print(json.dumps(ids))
    """
)

SAMPLED = textwrap.dedent(
    """
    import json
    from langfuse import Langfuse

    lf = Langfuse(sample_rate=float(RATE)) if RATE else Langfuse()
    traces = []
    for i in range(int(COUNT)):
        with lf.start_as_current_observation(name=PREFIX + "-root") as root:
            with lf.start_as_current_observation(name=PREFIX + "-child"):
                with lf.start_as_current_observation(
                    as_type="generation", name=PREFIX + "-gen", model="m"
                ):
                    pass
            lf.score_current_trace(name=PREFIX + "-score", value=i)
            traces.append(lf.get_current_trace_id())
    lf.flush()
    lf.shutdown()
    print(json.dumps({"traces": traces}))
    """
)

UNFLUSHED = textwrap.dedent(
    """
    import json
    from langfuse import Langfuse

    # Nothing is exported on its own before the end: the batch waits for 500 spans or 10 min.
    lf = Langfuse(flush_at=500, flush_interval=600)
    traces, observations = [], []
    for i in range(3):
        with lf.start_as_current_observation(name=PREFIX + "-root", input={"i": i}) as root:
            with lf.start_as_current_observation(as_type="tool", name=PREFIX + "-tool") as tool:
                tool.update(output=i)
                observations.append(tool.id)
            root.score_trace(name=PREFIX + "-score", value=i)
            observations.append(root.id)
            traces.append(lf.get_current_trace_id())
    before = [len(lf.api.observations.get_many(trace_id=t).data) for t in traces]
    if END == "shutdown":
        lf.shutdown()  # no flush() first: shutdown sends what is pending
    # else: the SDK's atexit handler sends it when the interpreter exits
    print(json.dumps({"traces": traces, "observations": observations, "before": before}))
    """
)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _system_keys(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata without the keys every OTel observation gets (resource and scope)."""
    return {k: v for k, v in metadata.items() if k not in ("resourceAttributes", "scope")}


# --------------------------------------------------------------------------------------------
# Context managers, generations, trace attributes, environments, scores.


@pytest.fixture(scope="module")
def context(server: Server) -> dict[str, Any]:
    script = sdk_script(
        CONTEXT,
        ENV=ENV,
        ENV_PROPAGATED=ENV_PROPAGATED,
        SESSION=SESSION,
        USER=USER,
        RUN=RUN,
        TRACE_NAME=f"v5-trace-{RUN}",
    )
    result = run_sdk_script(PYTHON, script, server)
    assert_no_sdk_errors(result)
    return result


@pytest.fixture(scope="module")
def trace(server: Server, context: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = server.get(f"/api/public/traces/{context['trace']}").json()
    return body


def test_auth_check_passes(server: Server, context: dict[str, Any]) -> None:
    """`auth_check()` reads GET /api/public/projects (the SDK makes no request at start)."""
    assert context["auth"] is True
    projects = server.get("/api/public/projects").json()
    assert [p["id"] for p in projects["data"]] == [server.project_id]


def test_trace_attributes_land(trace: dict[str, Any], context: dict[str, Any]) -> None:
    assert trace["id"] == context["trace"]
    assert trace["name"] == f"v5-trace-{RUN}"
    assert trace["userId"] == USER
    assert trace["sessionId"] == SESSION
    assert sorted(trace["tags"]) == sorted(["alpha", "beta", RUN])
    assert trace["version"] == "v7"
    assert trace["release"] == "rel-5.0"
    assert trace["public"] is True
    assert trace["environment"] == ENV
    # v5 has no trace input/output setters: the root observation's I/O is the trace's.
    assert trace["input"] == {"question": "hi?"}
    assert trace["output"] == {"answer": "hello"}
    assert trace["latency"] >= 0.045  # the generation alone takes 50 ms


def test_metadata_values_are_decoded_not_double_encoded(
    trace: dict[str, Any], context: dict[str, Any]
) -> None:
    """SDK 5 JSON-encodes every metadata value ("core" arrives as '"core"')."""
    md = _system_keys(trace["metadata"])
    # propagated trace metadata, then the root observation's own metadata
    assert md == {
        "tenant": "acme",
        "shard": 7,
        "team": "core",
        "nested": {"depth": 1},
        "count": 3,
        "flag": True,
        "digits": "123",
    }
    root = by_id(trace["observations"])[context["ids"]["root"]]
    assert _system_keys(root["metadata"]) == {
        "team": "core",
        "nested": {"depth": 1},
        "count": 3,
        "flag": True,
        "digits": "123",
    }
    assert root["metadata"]["scope"]["name"] == "langfuse-sdk"


def test_observation_tree_and_every_type(trace: dict[str, Any], context: dict[str, Any]) -> None:
    ids = context["ids"]
    obs = by_id(trace["observations"])
    expected = {
        "root": ("SPAN", "v5-root", None),
        "agent": ("AGENT", "agent-step", ids["root"]),
        "tool": ("TOOL", "tool-step", ids["root"]),
        "chain": ("CHAIN", "chain-step", ids["root"]),
        "retriever": ("RETRIEVER", "retriever-step", ids["root"]),
        "evaluator": ("EVALUATOR", "evaluator-step", ids["root"]),
        "guardrail": ("GUARDRAIL", "guardrail-step", ids["root"]),
        "embedding": ("EMBEDDING", "embed", ids["root"]),
        "gen": ("GENERATION", "chat", ids["root"]),
        "inner": ("SPAN", "inner", ids["root"]),
        "event": ("EVENT", "checkpoint", ids["inner"]),
    }
    assert set(obs) == {ids[key] for key in CONTEXT_OBSERVATIONS}
    for key, (type_, name, parent) in expected.items():
        o = obs[ids[key]]
        assert (o["type"], o["name"], o["parentObservationId"]) == (type_, name, parent), key
        assert o["traceId"] == context["trace"], key
        assert o["environment"] == ENV, key
        assert o["version"] == "v7", key  # propagated
    for kind in ("agent", "tool", "chain", "retriever", "evaluator", "guardrail"):
        o = obs[ids[kind]]
        assert o["input"] == {"kind": kind}
        assert o["output"] == f"{kind}-out"
        assert o["endTime"] is not None
    inner = obs[ids["inner"]]
    assert (inner["input"], inner["output"]) == ("inner-in", "inner-out")
    assert (inner["level"], inner["statusMessage"]) == ("WARNING", "slowish")
    assert _system_keys(inner["metadata"]) == {"extra": True}
    event = obs[ids["event"]]
    assert (event["level"], event["input"]) == ("DEBUG", {"at": "middle"})
    embedding = obs[ids["embedding"]]
    assert embedding["model"] == "text-embedding-3-small"
    assert embedding["input"] == "embed me"
    assert embedding["usageDetails"] == {"input": 8, "total": 8}


def test_generation_model_usage_cost_latency(server: Server, context: dict[str, Any]) -> None:
    g = server.get(f"/api/public/observations/{context['ids']['gen']}").json()
    assert g["type"] == "GENERATION"
    assert g["model"] == "gpt-4o"
    assert g["modelParameters"] == {"temperature": 0.2, "max_tokens": 256}
    assert g["input"] == [{"role": "user", "content": "hi?"}]
    assert g["output"] == {"role": "assistant", "content": "hello"}
    assert _system_keys(g["metadata"]) == {"provider": "openai"}
    assert g["usageDetails"] == {"input": 11, "output": 5, "input_cached_tokens": 2, "total": 18}
    assert g["costDetails"] == pytest.approx({"input": 0.0011, "output": 0.0005, "total": 0.0016})
    assert g["calculatedTotalCost"] == pytest.approx(0.0016)
    # the legacy aggregates: every input* key counts as input
    assert (g["inputUsage"], g["outputUsage"], g["totalUsage"]) == (13, 5, 18)
    start, end = _time(g["startTime"]), _time(g["endTime"])
    cst = _time(g["completionStartTime"])
    assert abs((cst - datetime.fromisoformat(context["cst"])).total_seconds()) < 0.001
    assert start < cst < end
    assert g["latency"] == pytest.approx((end - start).total_seconds(), abs=0.002)
    assert g["latency"] >= 0.045
    assert g["timeToFirstToken"] == pytest.approx((cst - start).total_seconds(), abs=0.002)
    assert g["timeToFirstToken"] >= 0.015


def test_scores_of_every_kind_land(server: Server, context: dict[str, Any]) -> None:
    trace_id, gen = context["trace"], context["ids"]["gen"]
    listed = server.get("/api/public/v2/scores", params={"traceId": trace_id, "limit": 50}).json()
    scores = {s["name"]: s for s in listed["data"]}
    assert set(scores) == {
        "relevance",
        "tone",
        "thumbs",
        "overall",
        "external",
        "batch-a",
        "batch-b",
        "batch-c",
    }
    expected = {
        "relevance": ("NUMERIC", 0.9, gen),
        "tone": ("CATEGORICAL", 0, gen),
        "thumbs": ("BOOLEAN", 1, None),
        "overall": ("NUMERIC", 0.75, None),
        "external": ("NUMERIC", 0.5, None),
        "batch-a": ("NUMERIC", 1, None),
        "batch-b": ("CATEGORICAL", 0, None),
        "batch-c": ("NUMERIC", 0.25, None),
    }
    for name, (data_type, value, observation) in expected.items():
        s = scores[name]
        assert (s["dataType"], s["value"], s["observationId"]) == (data_type, value, observation)
        assert s["source"] == "API", name
        assert s["traceId"] == trace_id, name
    for name in ("relevance", "tone", "thumbs", "overall", "external"):
        assert scores[name]["environment"] == ENV, name
    assert scores["relevance"]["comment"] == "good"
    assert scores["tone"]["stringValue"] == "friendly"
    assert scores["batch-b"]["stringValue"] == "yes"
    assert scores["external"]["comment"] == "via create_score"
    assert scores["external"]["metadata"] == {"source": "test"}
    session = server.get("/api/public/v2/scores", params={"sessionId": SESSION}).json()
    assert [(s["name"], s["value"], s["traceId"]) for s in session["data"]] == [
        ("session-score", 1, None)
    ]


def test_score_list_is_one_request_202_or_207(context: dict[str, Any]) -> None:
    """`api.scores.create` with a list (what the SDK's score consumer sends): 202 when every
    score is accepted, else 207 with the counts and a message per rejected score."""
    assert context["batch_accepted"] == ["CreateScoreBatchResponse", "Accepted"]
    kind, accepted, rejected, errors = context["batch_partial"]
    assert (kind, accepted, rejected) == ("CreateScoreBatchResults", 1, 1)
    assert errors == ["[1] value: NUMERIC scores need a numeric value"]


def test_environments_and_filters(server: Server, context: dict[str, Any]) -> None:
    traces = server.get("/api/public/traces", params={"environment": ENV, "limit": 50}).json()
    assert sorted(t["id"] for t in traces["data"]) == sorted(
        [context["trace"], context["third_trace"]]
    )
    seeded = server.get(f"/api/public/traces/{context['seeded_trace']}").json()
    assert seeded["environment"] == ENV_PROPAGATED
    assert seeded["name"] == "seeded-root"
    assert [o["environment"] for o in seeded["observations"]] == [ENV_PROPAGATED]
    assert [(s["name"], s["environment"]) for s in seeded["scores"]] == [
        ("seeded-score", ENV_PROPAGATED)
    ]
    listed = server.get(
        "/api/public/traces", params={"environment": ENV_PROPAGATED, "limit": 50}
    ).json()
    assert [t["id"] for t in listed["data"]] == [context["seeded_trace"]]
    obs = server.get(
        "/api/public/v2/observations", params={"environment": ENV, "type": "GENERATION"}
    ).json()
    assert sorted(o["id"] for o in obs["data"]) == sorted(
        [context["ids"]["gen"], context["ids"]["third"]]
    )
    scores = server.get(
        "/api/public/v2/scores", params={"environment": ENV_PROPAGATED, "limit": 50}
    ).json()
    assert [s["name"] for s in scores["data"]] == ["seeded-score"]


def test_session_holds_the_context_and_decorated_traces(
    server: Server, context: dict[str, Any], decorated: dict[str, Any]
) -> None:
    s = server.get(f"/api/public/sessions/{SESSION}").json()
    assert s["id"] == SESSION
    assert sorted(t["id"] for t in s["traces"]) == sorted([context["trace"], decorated["trace"]])


def test_seeded_trace_id_is_deterministic(server: Server, context: dict[str, Any]) -> None:
    """`Langfuse.create_trace_id(seed=...)` + `trace_context` put spans into a known trace."""
    assert context["seeded_trace"] == hashlib.sha256(RUN.encode()).digest()[:16].hex()
    seeded = server.get(f"/api/public/traces/{context['seeded_trace']}").json()
    [root] = seeded["observations"]
    assert root["id"] == context["ids"]["seeded_root"]
    assert root["parentObservationId"] is not None  # the remote parent, never sent


def test_third_party_span_gets_propagated_metadata_decoded(
    server: Server, context: dict[str, Any]
) -> None:
    t = server.get(f"/api/public/traces/{context['third_trace']}").json()
    assert t["name"] == "acme-call"
    assert t["userId"] == USER
    assert t["environment"] == ENV  # from the SDK's resource
    assert t["metadata"]["vendor"] == "acme"
    assert t["metadata"]["tier"] == 2
    o = server.get(f"/api/public/observations/{context['ids']['third']}").json()
    assert (o["type"], o["model"]) == ("GENERATION", "acme-1")
    assert o["usageDetails"] == {"input": 4, "output": 2, "total": 6}
    assert o["metadata"]["scope"]["name"] == "acme.llm"


# --------------------------------------------------------------------------------------------
# @observe: sync, async, generators, nesting, types.


@pytest.fixture(scope="module")
def decorated(server: Server) -> dict[str, Any]:
    script = sdk_script(DECORATORS, SESSION=SESSION, USER=USER)
    result = run_sdk_script(
        PYTHON,
        script,
        server,
        LANGFUSE_TRACING_ENVIRONMENT=ENV_DECO,
        LANGFUSE_RELEASE="deco-rel",
    )
    assert_no_sdk_errors(result)
    return result


def test_observe_results_are_returned_unchanged(decorated: dict[str, Any]) -> None:
    assert decorated["out"] == {"answer": "WHAT? DOC-A DOC-B", "streamed": "t0t1t2"}
    assert decorated["async_out"] == {"doubled": 42, "items": [0, 1, 2]}


def test_observe_nested_sync_tree(server: Server, decorated: dict[str, Any]) -> None:
    ids = decorated
    t = server.get(f"/api/public/traces/{ids['trace']}").json()
    assert t["name"] == "decorated-pipeline"
    assert (t["userId"], t["sessionId"], t["tags"]) == (USER, SESSION, ["decorated"])
    assert (t["version"], t["release"], t["environment"]) == ("d1", "deco-rel", ENV_DECO)
    assert t["metadata"]["via"] == "observe"
    assert t["input"] == {"args": ["what?"], "kwargs": {}}
    assert t["output"] == {"answer": "WHAT? DOC-A DOC-B", "streamed": "t0t1t2"}
    assert [s["name"] for s in t["scores"]] == ["deco-score"]

    obs = by_id(t["observations"])
    expected = {
        "pipeline": ("SPAN", "pipeline", None),
        "retrieve": ("RETRIEVER", "retrieve", ids["pipeline"]),
        "rerank": ("TOOL", "rerank", ids["retrieve"]),
        "llm": ("GENERATION", "fake-llm", ids["pipeline"]),
        "tokens": ("SPAN", "tokens", ids["pipeline"]),
        "private": ("SPAN", "private", ids["pipeline"]),
    }
    assert set(obs) == {ids[key] for key in expected}
    for key, (type_, name, parent) in expected.items():
        o = obs[ids[key]]
        assert (o["type"], o["name"], o["parentObservationId"]) == (type_, name, parent), key
        assert o["environment"] == ENV_DECO, key
        assert o["endTime"] is not None, key
    retrieve = obs[ids["retrieve"]]
    assert retrieve["input"] == {"args": ["what?"], "kwargs": {}}
    assert retrieve["output"] == ["doc-a", "doc-b"]
    assert (retrieve["level"], _system_keys(retrieve["metadata"])) == ("WARNING", {"hits": 2})
    assert obs[ids["rerank"]]["output"] == ["doc-a", "doc-b"]
    llm = obs[ids["llm"]]
    assert llm["model"] == "gpt-4o-mini"
    assert llm["modelParameters"] == {"temperature": 0}
    assert llm["usageDetails"] == {"input": 3, "output": 2, "total": 5}
    assert _system_keys(llm["metadata"]) == {"decorated": True}
    assert llm["output"] == "WHAT? DOC-A DOC-B"
    assert obs[ids["tokens"]]["output"] == "t0t1t2"  # a generator's string items, joined
    private = obs[ids["private"]]
    assert (private["input"], private["output"]) == (None, None)


def test_observe_async_and_async_generator(server: Server, decorated: dict[str, Any]) -> None:
    ids = decorated
    a = server.get(f"/api/public/traces/{ids['async_trace']}").json()
    assert (a["name"], a["environment"], a["release"]) == ("async-root", ENV_DECO, "deco-rel")
    assert a["output"] == {"doubled": 42, "items": [0, 1, 2]}
    obs = by_id(a["observations"])
    assert set(obs) == {ids["async_root"], ids["async_step"], ids["numbers"]}
    step = obs[ids["async_step"]]
    assert (step["type"], step["name"], step["parentObservationId"]) == (
        "AGENT",
        "async-step",
        ids["async_root"],
    )
    assert step["input"] == {"args": [21], "kwargs": {}}
    assert step["output"] == 42
    numbers = obs[ids["numbers"]]
    assert numbers["parentObservationId"] == ids["async_root"]
    assert numbers["output"] == [0, 1, 2]  # non-string items stay a list
    assert numbers["endTime"] is not None


# --------------------------------------------------------------------------------------------
# The SDK's own API client reads everything back.


@pytest.fixture(scope="module")
def sdk_read(server: Server, context: dict[str, Any], decorated: dict[str, Any]) -> dict[str, Any]:
    script = sdk_script(
        SDK_READ, TRACE=context["trace"], USER=USER, SESSION=SESSION, ENV=ENV, ENV_DECO=ENV_DECO
    )
    result = run_sdk_script(PYTHON, script, server)
    assert_no_sdk_errors(result)
    return result


def test_sdk_client_health_and_project(server: Server, sdk_read: dict[str, Any]) -> None:
    assert sdk_read["health"] == "OK"
    assert sdk_read["project"] == [server.project_id, "Compat project"]


def test_sdk_client_reads_observations(sdk_read: dict[str, Any], context: dict[str, Any]) -> None:
    ids = context["ids"]
    obs = {o["id"]: o for o in sdk_read["observations"]}
    assert set(obs) == {ids[k] for k in CONTEXT_OBSERVATIONS}
    assert sdk_read["cursor"] is None
    for o in obs.values():
        assert o["trace_id"] == context["trace"]
        assert (o["environment"], o["version"], o["public"]) == (ENV, "v7", True)
        assert (o["user_id"], o["session_id"]) == (USER, SESSION)
        assert sorted(o["tags"]) == sorted(["alpha", "beta", RUN])
        assert (o["release"], o["trace_name"]) == ("rel-5.0", f"v5-trace-{RUN}")
        assert o["is_root"] is (o["id"] == ids["root"])
    g = obs[ids["gen"]]
    assert (g["type"], g["name"], g["parent"]) == ("GENERATION", "chat", ids["root"])
    assert g["model"] == "gpt-4o"  # the SDK reads the provided model name as `model`
    assert g["model_parameters"] == {"temperature": 0.2, "max_tokens": 256}
    assert g["usage_details"] == {"input": 11, "output": 5, "input_cached_tokens": 2, "total": 18}
    assert g["cost_details"] == pytest.approx({"input": 0.0011, "output": 0.0005, "total": 0.0016})
    assert g["total_cost"] == pytest.approx(0.0016)
    assert g["latency"] >= 0.045 and g["ttft"] >= 0.015
    cst = datetime.fromisoformat(g["cst"]) - datetime.fromisoformat(context["cst"])
    assert abs(cst.total_seconds()) < 0.001
    # the v2 observations API returns input/output as JSON text, like Langfuse v4
    assert json.loads(g["input"]) == [{"role": "user", "content": "hi?"}]
    assert json.loads(g["output"]) == {"role": "assistant", "content": "hello"}
    assert g["metadata"]["provider"] == "openai"
    inner = obs[ids["inner"]]
    assert (inner["level"], inner["status_message"]) == ("WARNING", "slowish")
    assert inner["metadata"]["extra"] is True
    assert obs[ids["event"]]["type"] == "EVENT"
    assert obs[ids["root"]]["metadata"]["nested"] == {"depth": 1}
    default = sdk_read["default_fields"]  # core + basic only
    assert (default["id"], default["name"], default["is_root"]) == (ids["root"], "v5-root", True)
    assert (default["input"], default["model"], default["usage_details"]) == (None, None, None)


def test_sdk_client_filters(
    sdk_read: dict[str, Any], context: dict[str, Any], decorated: dict[str, Any]
) -> None:
    ids = context["ids"]
    context_obs = {ids[k] for k in CONTEXT_OBSERVATIONS}
    deco_with_user = {
        decorated[k] for k in ("retrieve", "rerank", "llm", "tokens", "private")
    }  # spans started inside propagate_attributes (the pipeline span itself got it too)
    deco_with_user.add(decorated["pipeline"])
    assert set(sdk_read["by_user"]) == context_obs | deco_with_user | {ids["third"]}
    assert set(sdk_read["by_session"]) == context_obs | deco_with_user
    assert sdk_read["by_env_generations"] == sorted([ids["gen"], ids["third"]])
    deco_all = deco_with_user | {decorated[k] for k in ("async_root", "async_step", "numbers")}
    assert set(sdk_read["by_deco_env"]) == deco_all
    assert sdk_read["roots"] == [ids["root"]]


def test_sdk_client_reads_scores(sdk_read: dict[str, Any], context: dict[str, Any]) -> None:
    trace_id, gen = context["trace"], context["ids"]["gen"]
    scores = {s["name"]: s for s in sdk_read["scores"]}
    assert set(scores) == {
        "relevance", "tone", "thumbs", "overall", "external", "batch-a", "batch-b", "batch-c",
    }  # fmt: skip
    assert (scores["relevance"]["data_type"], scores["relevance"]["value"]) == ("NUMERIC", 0.9)
    assert scores["relevance"]["comment"] == "good"
    assert scores["relevance"]["subject"] == {
        "kind": "observation",
        "id": gen,
        "trace_id": trace_id,
    }
    assert (scores["tone"]["data_type"], scores["tone"]["value"]) == ("CATEGORICAL", "friendly")
    assert (scores["thumbs"]["data_type"], scores["thumbs"]["value"]) == ("BOOLEAN", True)
    assert scores["overall"]["subject"] == {"kind": "trace", "id": trace_id, "trace_id": None}
    assert all(s["source"] == "API" for s in scores.values())
    assert scores["external"]["environment"] == ENV
    assert scores["external"]["metadata"] == {"source": "test"}
    assert [
        (s["name"], s["value"], s["subject"]["kind"], s["subject"]["id"])
        for s in sdk_read["session_scores"]
    ] == [("session-score", 1.0, "session", SESSION)]


# --------------------------------------------------------------------------------------------
# Client-side masking.


@pytest.fixture(scope="module")
def masked(server: Server) -> dict[str, Any]:
    result = run_sdk_script(PYTHON, MASKING, server)
    assert_no_sdk_errors(result)
    return result


def test_mask_redacts_before_sending(server: Server, masked: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{masked['trace']}").json()
    assert t["input"] == {"api_key": "[REDACTED]", "query": "hello"}
    assert t["output"] == {"echo": "[REDACTED]"}
    obs = by_id(t["observations"])
    root = obs[masked["root"]]
    assert _system_keys(root["metadata"]) == {"token": "[REDACTED]", "plain": "visible"}
    gen = obs[masked["gen"]]
    assert (gen["input"], gen["output"]) == ("call with [REDACTED]", ["answer", "for [REDACTED]"])
    decorated = obs[masked["decorated"]]
    assert decorated["input"] == {"args": ["[REDACTED]"], "kwargs": {"query": "plain"}}
    assert decorated["output"] == "used [REDACTED]"
    # a mask function that raises: the SDK sends its fallback, never the raw value
    assert obs[masked["bad"]]["input"] == "<fully masked due to failed mask function>"
    stored = json.dumps(t)
    for secret in ("sk-abc123", "sk-meta9", "sk-zzz1", "sk-yyy2", "sk-boom3", "sk-arg4", "sk-out5"):
        assert secret not in stored


# --------------------------------------------------------------------------------------------
# Sampling.


def _sampled(server: Server, rate: str, count: int, **env: str) -> tuple[str, dict[str, Any]]:
    prefix = f"v5-sample-{uuid.uuid4().hex[:8]}"
    script = sdk_script(SAMPLED, RATE=rate, COUNT=str(count), PREFIX=prefix)
    result = run_sdk_script(PYTHON, script, server, **env)
    assert_no_sdk_errors(result)
    return prefix, result


def _landed(server: Server, prefix: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """Observations of this run's traces by trace id, and its scores (found by name)."""
    by_trace: dict[str, list[str]] = {}
    for name in (f"{prefix}-root", f"{prefix}-child", f"{prefix}-gen"):
        page = server.get("/api/public/observations", params={"name": name, "limit": 100}).json()
        for o in page["data"]:
            by_trace.setdefault(o["traceId"], []).append(o["name"])
    scores = server.get(
        "/api/public/v2/scores", params={"name": f"{prefix}-score", "limit": 100}
    ).json()["data"]
    return by_trace, scores


def test_sample_rate_zero_sends_nothing(server: Server) -> None:
    prefix, result = _sampled(server, "", 5, LANGFUSE_SAMPLE_RATE="0")
    assert len(result["traces"]) == 5
    assert _landed(server, prefix) == ({}, [])
    for trace_id in result["traces"]:
        assert server.http.get(f"/api/public/traces/{trace_id}").status_code == 404


def test_sample_rate_one_sends_everything(server: Server) -> None:
    prefix, result = _sampled(server, "1.0", 5)
    by_trace, scores = _landed(server, prefix)
    assert set(by_trace) == set(result["traces"])
    for names in by_trace.values():
        assert sorted(names) == [f"{prefix}-child", f"{prefix}-gen", f"{prefix}-root"]
    assert sorted(s["traceId"] for s in scores) == sorted(result["traces"])


def test_fractional_sample_rate_keeps_whole_traces(server: Server) -> None:
    prefix, result = _sampled(server, "0.5", 30)
    by_trace, scores = _landed(server, prefix)
    assert 0 < len(by_trace) < 30  # P(all or none) = 2 / 2**30
    assert set(by_trace) <= set(result["traces"])
    for names in by_trace.values():  # no orphan observations, no half traces
        assert sorted(names) == [f"{prefix}-child", f"{prefix}-gen", f"{prefix}-root"]
    assert sorted(s["traceId"] for s in scores) == sorted(by_trace)  # scores follow their trace
    for trace_id in set(result["traces"]) - set(by_trace):
        assert server.http.get(f"/api/public/traces/{trace_id}").status_code == 404


# --------------------------------------------------------------------------------------------
# flush / shutdown.


@pytest.mark.parametrize("end", ["shutdown", "atexit"])
def test_everything_pending_is_sent_at_shutdown(server: Server, end: str) -> None:
    prefix = f"v5-{end}-{uuid.uuid4().hex[:8]}"
    result = run_sdk_script(PYTHON, sdk_script(UNFLUSHED, PREFIX=prefix, END=end), server)
    assert_no_sdk_errors(result)
    assert result["before"] == [0, 0, 0]  # read through the SDK's client before the end
    for i, trace_id in enumerate(result["traces"]):
        t = server.get(f"/api/public/traces/{trace_id}").json()
        assert (t["name"], t["input"]) == (f"{prefix}-root", {"i": i})
        assert sorted(o["name"] for o in t["observations"]) == [f"{prefix}-root", f"{prefix}-tool"]
        tool = next(o for o in t["observations"] if o["type"] == "TOOL")
        assert tool["output"] == i
        assert [(s["name"], s["value"]) for s in t["scores"]] == [(f"{prefix}-score", i)]
    landed = {
        o["id"]
        for trace_id in result["traces"]
        for o in server.get(f"/api/public/traces/{trace_id}").json()["observations"]
    }
    assert landed == set(result["observations"])
