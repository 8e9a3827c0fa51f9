"""The Langfuse Python SDK 3.x, unchanged, against a real `tracehouse serve`.

SDK 3.x is built on OpenTelemetry: spans go as OTLP/HTTP protobuf to /api/public/otel/v1/traces,
scores as JSON batches to /api/public/ingestion, `auth_check()` and `get_trace_url()` read
/api/public/projects. The SDK runs in its own cached venv (tests/compat/sdk_envs.py) as a
subprocess; everything is read back through tracehouse's HTTP API (validated against Langfuse's
OpenAPI contract) and through the SDK's own API client (`langfuse.api.*`).

The SDK sends a non-string input, output or metadata value as JSON text (an OTel attribute holds
no objects); Langfuse's read API hands such text back decoded, and so does tracehouse.
Every run uses its own names, user, session and environment, so runs never see each other.
"""

from __future__ import annotations

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
from tests.contract import assert_response_matches

pytestmark = pytest.mark.compat

MAIN = textwrap.dedent(
    """
    import asyncio, datetime as dt, json, time, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # start_generation & co. still work
    from langfuse import Langfuse, observe

    UTC = dt.timezone.utc
    # 3.x sets the release on the client (update_current_trace has none); the environment comes
    # from LANGFUSE_TRACING_ENVIRONMENT
    lf = Langfuse(release=RELEASE)
    out = {"auth": lf.auth_check()}
    ids = out["ids"] = {}

    # ---- @observe: sync, nested, generation, generators, async --------------------------------
    @observe()
    def rerank(docs):
        ids["rerank"] = lf.get_current_observation_id()
        return sorted(docs)

    @observe(name="retrieve")
    def retrieve(question):
        ids["retrieve"] = lf.get_current_observation_id()
        lf.update_current_span(metadata={"hits": 2}, level="WARNING", status_message="few hits")
        return rerank(["doc-b", "doc-a"])

    @observe(as_type="generation", name="fake-llm")
    def llm(prompt):
        ids["llm"] = lf.get_current_observation_id()
        lf.update_current_generation(
            model="gpt-4o", model_parameters={"temperature": 0.2, "max_tokens": 256},
            usage_details={"input": 11, "output": 5}, cost_details={"input": 0.0011, "output": 0.002},
            completion_start_time=dt.datetime.now(UTC), metadata={"provider": "openai", "cached": False},
        )
        lf.score_current_span(name="tone", value="friendly", comment="polite")
        return prompt.upper()

    @observe()
    def stream_tokens(n):
        ids["stream"] = lf.get_current_observation_id()
        for i in range(n):
            yield f"tok{i} "

    @observe(name="async-step")
    async def async_step(x):
        await asyncio.sleep(0)
        ids["async_step"] = lf.get_current_observation_id()
        return x * 2

    @observe(name="async-stream")
    async def async_stream():
        ids["async_stream"] = lf.get_current_observation_id()
        for word in ("a", "b"):
            yield word

    async def run_async():
        doubled = await async_step(21)
        return doubled, [chunk async for chunk in async_stream()]

    @observe(name=PIPELINE)
    def pipeline(question):
        ids["trace"] = lf.get_current_trace_id()
        ids["root"] = lf.get_current_observation_id()
        lf.update_current_trace(
            name=TRACE_NAME, user_id=USER, session_id=SESSION, tags=["beta", "alpha"],
            metadata={"team": "core", "nested": {"depth": 1}, "count": 3, "ratio": 0.5,
                      "flag": True, "labels": ["x", "y"]},
            version="v7",
            public=True, input={"question": question},
        )
        answer = llm(question + " " + " ".join(retrieve(question)))
        streamed = "".join(stream_tokens(3))
        doubled, chunks = asyncio.run(run_async())
        lf.update_current_trace(output={"answer": answer})
        lf.score_current_span(name="root-quality", value=0.75, comment="fine")
        lf.score_current_trace(name="helpful", value=1, data_type="BOOLEAN")
        return {"answer": answer, "streamed": streamed, "doubled": doubled, "chunks": chunks}

    out["result"] = pipeline("what?")

    # ---- context managers, manual spans, events ----------------------------------------------
    with lf.start_as_current_span(name=CM_ROOT, input={"step": 1}, metadata={"kind": "cm"}) as root:
        ids["cm_trace"], ids["cm_root"] = root.trace_id, root.id
        with lf.start_as_current_generation(
            name="cm-gen", model="claude-x", input=[{"role": "user", "content": "hi?"}],
            model_parameters={"temperature": 0, "stop": ["END"]}, version="g1",
            usage_details={"input": 20, "output": 4, "input_cached_tokens": 6},
            cost_details={"input": 0.002, "output": 0.001},
        ) as gen:
            ids["cm_gen"] = gen.id
            gen.update(output={"role": "assistant", "content": "hello"})
            ids["event"] = lf.create_event(name="checkpoint", input={"at": "middle"}, level="DEBUG").id
        manual = root.start_span(name="manual-span", input="manual-in")
        ids["manual"] = manual.id
        t0 = time.time_ns()
        timed = manual.start_generation(
            name="timed-gen", model="gpt-4o-mini", usage_details={"input": 7, "output": 3},
            completion_start_time=dt.datetime.fromtimestamp((t0 + 500_000_000) / 1e9, UTC),
        )
        ids["timed"] = timed.id
        timed.end(end_time=t0 + 1_500_000_000)
        manual.update(output="manual-out")
        manual.end()
        with lf.start_as_current_observation(name="cm-tool", as_type="tool", input={"q": 1}) as tool:
            ids["tool"] = tool.id
            tool.update(output={"hits": 3})
        root.update(output={"step": "done"})
    lf.create_score(
        name="direct", value=0.5, trace_id=ids["cm_trace"], observation_id=ids["cm_gen"],
        comment="by id", metadata={"reviewer": "bot"},
    )
    lf.flush()

    # ---- read back through the SDK's own API client -------------------------------------------
    def pick(obj, *names):
        return {name: getattr(obj, name) for name in names}

    api = lf.api
    t = api.trace.get(ids["trace"])
    out["sdk_trace"] = pick(
        t, "id", "name", "user_id", "session_id", "tags", "public", "release", "version",
        "environment", "input", "output", "metadata", "latency", "total_cost", "html_path",
    )
    out["sdk_trace"]["observations"] = [
        pick(o, "id", "type", "name", "parent_observation_id", "model", "usage_details",
             "cost_details", "environment", "level", "status_message")
        for o in t.observations
    ]
    out["sdk_trace"]["scores"] = [
        pick(s, "name", "value", "data_type", "observation_id", "comment", "environment")
        | {"string_value": getattr(s, "string_value", None)}
        for s in t.scores
    ]
    gens = api.observations.get_many(trace_id=ids["cm_trace"], type="GENERATION")
    out["sdk_generations"] = sorted(
        [o.id, o.name, o.model, o.usage_details, o.parent_observation_id] for o in gens.data
    )
    o = api.observations.get(ids["timed"])
    out["sdk_timed"] = pick(
        o, "model", "usage_details", "start_time", "end_time", "completion_start_time",
        "latency", "time_to_first_token",
    )
    out["sdk_scores"] = sorted(
        [s.name, s.data_type, s.value, getattr(s, "string_value", None)]
        for s in api.score_v_2.get(trace_id=ids["trace"]).data
    )
    session = api.sessions.get(SESSION)
    out["sdk_session"] = {"id": session.id, "traces": [x.id for x in session.traces]}
    out["sdk_env_traces"] = sorted(x.id for x in api.trace.list(environment=ENV, limit=100).data)
    out["sdk_env_observations"] = len(api.observations.get_many(environment=ENV, limit=100).data)
    out["sdk_user_tag_traces"] = [x.id for x in api.trace.list(user_id=USER, tags=["alpha"]).data]
    out["sdk_env_sessions"] = [x.id for x in api.sessions.list(environment=ENV).data]
    out["trace_url"] = lf.get_trace_url(trace_id=ids["trace"])

    # ---- shutdown alone flushes what is still queued ------------------------------------------
    with lf.start_as_current_span(name=LAST) as last:
        ids["last_trace"] = last.trace_id
    lf.create_score(name="after-flush", value=2.0, trace_id=ids["last_trace"])
    lf.shutdown()
    print(json.dumps(out, default=str))
    """
)

# The environment as a constructor argument, a mask function, and trace updates from a child.
MASKED = textwrap.dedent(
    """
    import json, re
    from langfuse import Langfuse, observe

    def mask(data, **kwargs):
        if isinstance(data, str):
            return re.sub(r"secret-[a-z0-9]+", "[REDACTED]", data)
        if isinstance(data, dict):
            return {k: mask(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [mask(v) for v in data]
        return data

    lf = Langfuse(environment=ENV, mask=mask)
    ids = {}

    @observe(as_type="tool", name="lookup")
    def lookup(query):
        ids["tool"] = lf.get_current_observation_id()
        lf.update_current_trace(
            name=TRACE_NAME, user_id=USER, metadata={"api_key": "secret-k3y", "plain": "visible"},
            output="answer with secret-out",
        )
        lf.update_current_span(metadata={"token": "secret-t0k"})
        return {"token": "secret-abc", "ok": True}

    @observe(name=ROOT)
    def handler(password):
        ids["trace"] = lf.get_current_trace_id()
        ids["root"] = lf.get_current_observation_id()
        lf.score_current_trace(name="masked-score", value=0.25)
        return lookup("find secret-123")

    handler("secret-pw")
    lf.flush()
    lf.shutdown()
    print(json.dumps(ids))
    """
)

SAMPLED = textwrap.dedent(
    """
    import json, warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    from langfuse import Langfuse, observe

    lf = Langfuse(**CLIENT_ARGS)
    traces = []

    @observe(name=NAME)
    def work(i):
        traces.append(lf.get_current_trace_id())
        with lf.start_as_current_generation(name=NAME + "-gen", model="m", usage_details={"input": i}):
            pass
        lf.score_current_trace(name=NAME + "-score", value=float(i))
        return i

    for i in range(5):
        work(i)
    lf.create_score(name=NAME + "-direct", value=0.5, trace_id=traces[0])
    lf.flush()
    lf.shutdown()
    print(json.dumps({"traces": traces}))
    """
)


def _run_id() -> str:
    return uuid.uuid4().hex[:10]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    run = _run_id()
    return {
        "RELEASE": f"rel-{run}",
        "PIPELINE": f"pipeline-{run}",
        "TRACE_NAME": f"sdk3-trace-{run}",
        "USER": f"user-{run}",
        "SESSION": f"sess-{run}",
        "CM_ROOT": f"cm-root-{run}",
        "LAST": f"last-{run}",
        "ENV": f"sdk3-{run}",
    }


@pytest.fixture(scope="module")
def main(server: Server, sdk3_python: Path, names: dict[str, str]) -> dict[str, Any]:
    result = run_sdk_script(
        sdk3_python,
        sdk_script(MAIN, **names),
        server,
        LANGFUSE_TRACING_ENVIRONMENT=names["ENV"],
    )
    assert_no_sdk_errors(result)
    return result


@pytest.fixture(scope="module")
def ids(main: dict[str, Any]) -> dict[str, str]:
    return main["ids"]


@pytest.fixture(scope="module")
def trace(server: Server, ids: dict[str, str]) -> dict[str, Any]:
    return server.get(f"/api/public/traces/{ids['trace']}").json()


@pytest.fixture(scope="module")
def cm_trace(server: Server, ids: dict[str, str]) -> dict[str, Any]:
    return server.get(f"/api/public/traces/{ids['cm_trace']}").json()


# --------------------------------------------------------------------------------------------
# Start-up routes.


def test_auth_check_and_trace_url_use_the_projects_route(
    server: Server, main: dict[str, Any], ids: dict[str, str]
) -> None:
    assert main["auth"] is True
    projects = server.get("/api/public/projects").json()
    assert [p["id"] for p in projects["data"]] == [server.project_id]
    assert main["trace_url"] == f"{server.url}/project/{server.project_id}/traces/{ids['trace']}"


def test_wrong_secret_fails_auth_check(server: Server, sdk3_python: Path) -> None:
    script = textwrap.dedent(
        """
        import json
        from langfuse import Langfuse
        try:
            Langfuse().auth_check()
            outcome = "accepted"
        except Exception as exc:
            outcome = type(exc).__name__ + ": " + str(getattr(exc, "status_code", ""))
        print(json.dumps({"outcome": outcome}))
        """
    )
    result = run_sdk_script(sdk3_python, script, server, LANGFUSE_SECRET_KEY="sk-lf-wrong")
    assert result["outcome"] == "UnauthorizedError: 401"


# --------------------------------------------------------------------------------------------
# Traces, @observe and context managers.


def test_update_current_trace_sets_every_trace_field(
    trace: dict[str, Any], names: dict[str, str], ids: dict[str, str]
) -> None:
    assert trace["id"] == ids["trace"]
    assert trace["name"] == names["TRACE_NAME"]
    assert trace["userId"] == names["USER"]
    assert trace["sessionId"] == names["SESSION"]
    assert sorted(trace["tags"]) == ["alpha", "beta"]
    assert trace["version"] == "v7"
    assert trace["release"] == names["RELEASE"]
    assert trace["public"] is True
    assert trace["environment"] == names["ENV"]
    assert trace["input"] == {"question": "what?"}
    assert trace["output"] == {"answer": "WHAT? DOC-A DOC-B"}
    metadata = trace["metadata"]
    assert metadata["team"] == "core"
    assert metadata["count"] == 3
    assert metadata["nested"] == {"depth": 1}
    assert (metadata["ratio"], metadata["flag"], metadata["labels"]) == (0.5, True, ["x", "y"])
    # the SDK's scope and resource are kept beside the user's keys, as Langfuse does
    assert metadata["scope"]["name"] == "langfuse-sdk"
    assert metadata["resourceAttributes"]["langfuse.release"] == names["RELEASE"]


def test_observe_nests_sync_async_and_generator_functions(
    trace: dict[str, Any], main: dict[str, Any], ids: dict[str, str], names: dict[str, str]
) -> None:
    assert main["result"] == {
        "answer": "WHAT? DOC-A DOC-B",
        "streamed": "tok0 tok1 tok2 ",
        "doubled": 42,
        "chunks": ["a", "b"],
    }
    obs = by_id(trace["observations"])
    # SDK 3.x: the outermost decorated function is the root observation of the trace.
    expected = {
        "root": (names["PIPELINE"], "SPAN", None),
        "retrieve": ("retrieve", "SPAN", ids["root"]),
        "rerank": ("rerank", "SPAN", ids["retrieve"]),
        "llm": ("fake-llm", "GENERATION", ids["root"]),
        "stream": ("stream_tokens", "SPAN", ids["root"]),
        "async_step": ("async-step", "SPAN", ids["root"]),
        "async_stream": ("async-stream", "SPAN", ids["root"]),
    }
    assert set(obs) == {ids[key] for key in expected}
    for key, (name, type_, parent) in expected.items():
        o = obs[ids[key]]
        assert (o["name"], o["type"], o["parentObservationId"]) == (name, type_, parent), key
        assert o["traceId"] == ids["trace"], key
        assert o["environment"] == names["ENV"], key
        assert o["endTime"] is not None and o["endTime"] >= o["startTime"], key

    root = obs[ids["root"]]
    assert root["input"] == {"args": ["what?"], "kwargs": {}}
    assert root["output"]["doubled"] == 42
    assert root["version"] == "v7"  # update_current_trace(version=) tags the span too
    retrieve = obs[ids["retrieve"]]
    assert retrieve["input"] == {"args": ["what?"], "kwargs": {}}
    assert retrieve["output"] == ["doc-a", "doc-b"]
    assert retrieve["level"] == "WARNING"
    assert retrieve["statusMessage"] == "few hits"
    assert retrieve["metadata"]["hits"] == 2
    assert obs[ids["rerank"]]["input"] == {"args": [["doc-b", "doc-a"]], "kwargs": {}}
    # generator output is the joined chunks once the generator is exhausted
    assert obs[ids["stream"]]["output"] == "tok0 tok1 tok2 "
    assert obs[ids["async_stream"]]["output"] == "ab"
    assert obs[ids["async_step"]]["output"] == 42
    assert obs[ids["async_step"]]["input"] == {"args": [21], "kwargs": {}}


def test_observe_generation_carries_model_usage_and_cost(
    trace: dict[str, Any], ids: dict[str, str]
) -> None:
    g = by_id(trace["observations"])[ids["llm"]]
    assert g["type"] == "GENERATION"
    assert g["model"] == "gpt-4o"
    assert g["modelParameters"] == {"temperature": 0.2, "max_tokens": 256}
    assert g["usageDetails"] == {"input": 11, "output": 5, "total": 16}
    assert g["costDetails"] == pytest.approx({"input": 0.0011, "output": 0.002, "total": 0.0031})
    assert g["calculatedTotalCost"] == pytest.approx(0.0031)
    assert g["usage"]["input"] == 11 and g["usage"]["output"] == 5 and g["usage"]["total"] == 16
    assert g["completionStartTime"] is not None
    assert g["startTime"] <= g["completionStartTime"] <= g["endTime"]
    assert g["metadata"]["provider"] == "openai"
    assert g["metadata"]["cached"] is False
    assert g["input"] == {"args": ["what? doc-a doc-b"], "kwargs": {}}
    assert g["output"] == "WHAT? DOC-A DOC-B"
    assert trace["totalCost"] == pytest.approx(0.0031)
    assert trace["latency"] > 0


def test_context_managers_build_the_tree_with_an_event(
    cm_trace: dict[str, Any], ids: dict[str, str], names: dict[str, str]
) -> None:
    t = cm_trace
    assert t["name"] == names["CM_ROOT"]  # no trace name given: the root span's name
    assert t["input"] == {"step": 1}  # ... and the root span's input/output
    assert t["output"] == {"step": "done"}
    assert t["environment"] == names["ENV"]
    assert t["release"] == names["RELEASE"]
    obs = by_id(t["observations"])
    expected = {
        "cm_root": ("SPAN", None),
        "cm_gen": ("GENERATION", ids["cm_root"]),
        "event": ("EVENT", ids["cm_gen"]),
        "manual": ("SPAN", ids["cm_root"]),
        "timed": ("GENERATION", ids["manual"]),
        "tool": ("TOOL", ids["cm_root"]),
    }
    assert set(obs) == {ids[key] for key in expected}
    for key, (type_, parent) in expected.items():
        assert (obs[ids[key]]["type"], obs[ids[key]]["parentObservationId"]) == (type_, parent)
        assert obs[ids[key]]["environment"] == names["ENV"]
    root = obs[ids["cm_root"]]
    assert root["metadata"]["kind"] == "cm"
    event = obs[ids["event"]]
    assert event["name"] == "checkpoint"
    assert event["level"] == "DEBUG"
    assert event["input"] == {"at": "middle"}
    manual = obs[ids["manual"]]
    assert (manual["input"], manual["output"]) == ("manual-in", "manual-out")
    assert manual["endTime"] is not None
    tool = obs[ids["tool"]]
    assert tool["input"] == {"q": 1}
    assert tool["output"] == {"hits": 3}


def test_generation_fields_from_context_managers(server: Server, ids: dict[str, str]) -> None:
    g = server.get(f"/api/public/observations/{ids['cm_gen']}").json()
    assert g["name"] == "cm-gen"
    assert g["model"] == "claude-x"
    assert g["version"] == "g1"
    # model parameters that are not strings or numbers arrive as JSON text (as in Langfuse)
    assert g["modelParameters"] == {"temperature": 0, "stop": '["END"]'}
    assert g["input"] == [{"role": "user", "content": "hi?"}]
    assert g["output"] == {"role": "assistant", "content": "hello"}
    assert g["usageDetails"] == {"input": 20, "output": 4, "input_cached_tokens": 6, "total": 30}
    assert g["costDetails"] == pytest.approx({"input": 0.002, "output": 0.001, "total": 0.003})


def test_generation_timing_latency_and_time_to_first_token(
    server: Server, ids: dict[str, str]
) -> None:
    g = server.get(f"/api/public/observations/{ids['timed']}").json()
    assert g["model"] == "gpt-4o-mini"
    assert g["usageDetails"] == {"input": 7, "output": 3, "total": 10}
    start, end = _time(g["startTime"]), _time(g["endTime"])
    first_token = _time(g["completionStartTime"])
    # the script sets the first token 0.5 s and the end 1.5 s after a clock read taken just
    # before the generation started
    assert (end - first_token).total_seconds() == pytest.approx(1.0, abs=0.002)
    assert 1.0 < (end - start).total_seconds() <= 1.5
    assert 0.0 < (first_token - start).total_seconds() <= 0.5
    assert g["latency"] == pytest.approx((end - start).total_seconds(), abs=0.002)
    assert g["timeToFirstToken"] == pytest.approx((first_token - start).total_seconds(), abs=0.002)


# --------------------------------------------------------------------------------------------
# Scores.


def test_scores_from_the_sdk_land(
    server: Server, trace: dict[str, Any], ids: dict[str, str], names: dict[str, str]
) -> None:
    scores = {s["name"]: s for s in trace["scores"]}
    assert set(scores) == {"tone", "root-quality", "helpful"}
    tone = scores["tone"]  # score_current_span inside the generation, a string value
    assert (tone["dataType"], tone["stringValue"]) == ("CATEGORICAL", "friendly")
    assert tone["observationId"] == ids["llm"]
    assert tone["comment"] == "polite"
    quality = scores["root-quality"]  # score_current_span on the root observation
    assert (quality["dataType"], quality["value"]) == ("NUMERIC", 0.75)
    assert quality["observationId"] == ids["root"]
    assert quality["comment"] == "fine"
    helpful = scores["helpful"]  # score_current_trace
    assert (helpful["dataType"], helpful["value"], helpful["stringValue"]) == ("BOOLEAN", 1, "True")
    assert helpful["observationId"] is None
    for s in scores.values():
        assert s["traceId"] == ids["trace"]
        assert s["source"] == "API"
        assert s["environment"] == names["ENV"]

    direct = server.get("/api/public/v2/scores", params={"traceId": ids["cm_trace"]}).json()
    [score] = direct["data"]  # create_score with explicit ids, comment and metadata
    assert (score["name"], score["value"], score["dataType"]) == ("direct", 0.5, "NUMERIC")
    assert score["observationId"] == ids["cm_gen"]
    assert score["comment"] == "by id"
    assert score["metadata"] == {"reviewer": "bot"}
    assert score["environment"] == names["ENV"]
    assert score["trace"]["userId"] is None

    listed = server.get("/api/public/v2/scores", params={"userId": names["USER"]}).json()
    assert sorted(s["name"] for s in listed["data"]) == ["helpful", "root-quality", "tone"]
    assert all(sorted(s["trace"]["tags"]) == ["alpha", "beta"] for s in listed["data"])


# --------------------------------------------------------------------------------------------
# Environments.


def test_environment_filters_traces_observations_scores_and_sessions(
    server: Server, ids: dict[str, str], names: dict[str, str]
) -> None:
    env = {"environment": names["ENV"]}
    traces = server.get("/api/public/traces", params=env).json()
    assert sorted(t["id"] for t in traces["data"]) == sorted(
        [ids["trace"], ids["cm_trace"], ids["last_trace"]]
    )
    observations = server.get("/api/public/observations", params={**env, "limit": 100}).json()
    assert len(observations["data"]) == 14  # 7 decorated + 6 in the context-manager trace + 1
    assert {o["environment"] for o in observations["data"]} == {names["ENV"]}
    v2 = server.get("/api/public/v2/observations", params={**env, "limit": 100}).json()
    assert len(v2["data"]) == 14
    scores = server.get("/api/public/v2/scores", params=env).json()
    assert sorted(s["name"] for s in scores["data"]) == [
        "after-flush",
        "direct",
        "helpful",
        "root-quality",
        "tone",
    ]
    sessions = server.get("/api/public/sessions", params=env).json()
    assert [s["id"] for s in sessions["data"]] == [names["SESSION"]]
    other = server.get("/api/public/traces", params={"environment": "default", "limit": 100})
    assert ids["trace"] not in [t["id"] for t in other.json()["data"]]


def test_environment_from_the_constructor_argument(
    server: Server, masked: dict[str, Any], masked_names: dict[str, str]
) -> None:
    t = server.get(f"/api/public/traces/{masked['trace']}").json()
    assert t["environment"] == masked_names["ENV"]
    assert {o["environment"] for o in t["observations"]} == {masked_names["ENV"]}
    assert [s["environment"] for s in t["scores"]] == [masked_names["ENV"]]
    listed = server.get("/api/public/traces", params={"environment": masked_names["ENV"]}).json()
    assert [x["id"] for x in listed["data"]] == [masked["trace"]]


# --------------------------------------------------------------------------------------------
# The SDK's own API client.


def test_read_back_through_the_sdk_client(
    main: dict[str, Any], ids: dict[str, str], names: dict[str, str]
) -> None:
    t = main["sdk_trace"]
    assert t["id"] == ids["trace"]
    assert t["name"] == names["TRACE_NAME"]
    assert (t["user_id"], t["session_id"]) == (names["USER"], names["SESSION"])
    assert sorted(t["tags"]) == ["alpha", "beta"]
    assert (t["public"], t["release"], t["version"]) == (True, names["RELEASE"], "v7")
    assert t["environment"] == names["ENV"]
    assert t["input"] == {"question": "what?"}
    assert t["output"] == {"answer": "WHAT? DOC-A DOC-B"}
    assert t["metadata"]["team"] == "core"
    assert t["metadata"]["nested"] == {"depth": 1}
    assert t["total_cost"] == pytest.approx(0.0031)
    assert t["latency"] > 0
    assert t["html_path"].endswith(f"/traces/{ids['trace']}")
    obs = by_id(t["observations"])
    assert len(obs) == 7
    assert obs[ids["rerank"]]["parent_observation_id"] == ids["retrieve"]
    assert obs[ids["retrieve"]]["level"] == "WARNING"
    assert obs[ids["retrieve"]]["status_message"] == "few hits"
    llm = obs[ids["llm"]]
    assert (llm["type"], llm["model"]) == ("GENERATION", "gpt-4o")
    assert llm["usage_details"] == {"input": 11, "output": 5, "total": 16}
    assert llm["cost_details"] == pytest.approx({"input": 0.0011, "output": 0.002, "total": 0.0031})
    assert {o["environment"] for o in obs.values()} == {names["ENV"]}
    scores = {s["name"]: s for s in t["scores"]}
    assert scores["tone"]["string_value"] == "friendly"
    assert scores["tone"]["observation_id"] == ids["llm"]
    assert (scores["root-quality"]["value"], scores["root-quality"]["comment"]) == (0.75, "fine")
    assert (scores["helpful"]["data_type"], scores["helpful"]["value"]) == ("BOOLEAN", 1)

    gens = {g[0]: g for g in main["sdk_generations"]}
    assert set(gens) == {ids["cm_gen"], ids["timed"]}
    assert gens[ids["cm_gen"]][1:] == [
        "cm-gen",
        "claude-x",
        {"input": 20, "output": 4, "input_cached_tokens": 6, "total": 30},
        ids["cm_root"],
    ]
    assert gens[ids["timed"]][1:] == [
        "timed-gen",
        "gpt-4o-mini",
        {"input": 7, "output": 3, "total": 10},
        ids["manual"],
    ]
    timed = main["sdk_timed"]
    assert timed["model"] == "gpt-4o-mini"
    assert 1.0 < timed["latency"] <= 1.5
    assert timed["latency"] - timed["time_to_first_token"] == pytest.approx(1.0, abs=0.002)

    assert main["sdk_scores"] == [
        ["helpful", "BOOLEAN", 1.0, "True"],
        ["root-quality", "NUMERIC", 0.75, None],
        ["tone", "CATEGORICAL", 0.0, "friendly"],
    ]
    assert main["sdk_session"] == {"id": names["SESSION"], "traces": [ids["trace"]]}
    assert main["sdk_env_traces"] == sorted([ids["trace"], ids["cm_trace"]])
    assert main["sdk_env_observations"] == 13
    assert main["sdk_user_tag_traces"] == [ids["trace"]]
    assert main["sdk_env_sessions"] == [names["SESSION"]]


# --------------------------------------------------------------------------------------------
# flush() and shutdown().


def test_flush_commits_before_the_script_reads_and_shutdown_flushes_the_rest(
    server: Server, main: dict[str, Any], ids: dict[str, str], names: dict[str, str]
) -> None:
    # the reads above ran right after flush(): they already saw every span and score
    assert len(main["sdk_trace"]["observations"]) == 7
    assert len(main["sdk_trace"]["scores"]) == 3
    # a span and a score created after the reads were sent by shutdown() alone
    last = server.get(f"/api/public/traces/{ids['last_trace']}").json()
    assert last["name"] == names["LAST"]
    assert [o["name"] for o in last["observations"]] == [names["LAST"]]
    assert [(s["name"], s["value"]) for s in last["scores"]] == [("after-flush", 2.0)]


# --------------------------------------------------------------------------------------------
# Masking, and trace updates from a child span.


@pytest.fixture(scope="module")
def masked_names() -> dict[str, str]:
    run = _run_id()
    return {
        "ENV": f"masked-{run}",
        "ROOT": f"masked-root-{run}",
        "TRACE_NAME": f"masked-trace-{run}",
        "USER": f"masked-user-{run}",
    }


@pytest.fixture(scope="module")
def masked(server: Server, sdk3_python: Path, masked_names: dict[str, str]) -> dict[str, Any]:
    result = run_sdk_script(sdk3_python, sdk_script(MASKED, **masked_names), server)
    assert_no_sdk_errors(result)
    return result


def test_mask_function_redacts_before_anything_is_sent(
    server: Server, masked: dict[str, Any]
) -> None:
    r = server.get(f"/api/public/traces/{masked['trace']}")
    assert "secret-" not in r.text  # not in any input, output or metadata of any record
    t = r.json()
    assert t["output"] == "answer with [REDACTED]"
    assert t["metadata"]["api_key"] == "[REDACTED]"
    assert t["metadata"]["plain"] == "visible"
    obs = by_id(t["observations"])
    root, tool = obs[masked["root"]], obs[masked["tool"]]
    assert root["input"] == {"args": ["[REDACTED]"], "kwargs": {}}
    assert tool["input"] == {"args": ["find [REDACTED]"], "kwargs": {}}
    assert tool["output"] == {"token": "[REDACTED]", "ok": True}
    assert tool["metadata"]["token"] == "[REDACTED]"


def test_update_current_trace_from_a_child_span_reaches_the_trace(
    server: Server, masked: dict[str, Any], masked_names: dict[str, str]
) -> None:
    t = server.get(f"/api/public/traces/{masked['trace']}").json()
    assert t["name"] == masked_names["TRACE_NAME"]  # the child's trace name beats the root's
    assert t["userId"] == masked_names["USER"]
    obs = by_id(t["observations"])
    assert obs[masked["tool"]]["type"] == "TOOL"
    assert obs[masked["tool"]]["parentObservationId"] == masked["root"]
    assert obs[masked["root"]]["name"] == masked_names["ROOT"]
    assert t["input"] == {"args": ["[REDACTED]"], "kwargs": {}}  # from the root


# --------------------------------------------------------------------------------------------
# Sampling.


def _sampled_run(
    server: Server, python: Path, client_args: dict[str, Any], **env: str
) -> tuple[str, list[str]]:
    name = f"sampled-{_run_id()}"
    script = f"CLIENT_ARGS = {client_args!r}\n" + sdk_script(SAMPLED, NAME=name)
    result = run_sdk_script(python, script, server, **env)
    assert_no_sdk_errors(result)
    assert len(result["traces"]) == 5
    return name, result["traces"]


def test_sample_rate_zero_sends_nothing(server: Server, sdk3_python: Path) -> None:
    # Langfuse(sample_rate=0) would fall back to the default (0 is falsy in the SDK): the
    # environment variable is how a rate of 0 is configured.
    name, traces = _sampled_run(server, sdk3_python, {}, LANGFUSE_SAMPLE_RATE="0")
    assert server.get("/api/public/traces", params={"name": name}).json()["data"] == []
    assert (
        server.get("/api/public/observations", params={"name": f"{name}-gen"}).json()["data"] == []
    )
    for score_name in (f"{name}-score", f"{name}-direct"):
        assert server.get("/api/public/v2/scores", params={"name": score_name}).json()["data"] == []
    for trace_id in traces:
        r = server.http.get(f"/api/public/traces/{trace_id}")
        assert r.status_code == 404
        assert_response_matches(r)


def test_sample_rate_one_sends_everything_span_by_span_gzipped(
    server: Server, sdk3_python: Path
) -> None:
    # One span per export (children arrive before their root) and gzip-compressed bodies.
    name, traces = _sampled_run(
        server,
        sdk3_python,
        {"sample_rate": 1.0},
        LANGFUSE_FLUSH_AT="1",
        OTEL_EXPORTER_OTLP_TRACES_COMPRESSION="gzip",
    )
    listed = server.get("/api/public/traces", params={"name": name, "limit": 50}).json()
    assert sorted(t["id"] for t in listed["data"]) == sorted(traces)
    gens = server.get("/api/public/observations", params={"name": f"{name}-gen"}).json()
    assert sorted(o["traceId"] for o in gens["data"]) == sorted(traces)
    assert sorted(o["usageDetails"]["input"] for o in gens["data"]) == [0, 1, 2, 3, 4]
    for i, trace_id in enumerate(traces):
        t = server.get(f"/api/public/traces/{trace_id}").json()
        root = next(o for o in t["observations"] if o["parentObservationId"] is None)
        assert root["name"] == name
        assert [o["parentObservationId"] for o in t["observations"] if o["id"] != root["id"]] == [
            root["id"]
        ]
        assert t["output"] == i
        expected = [(f"{name}-score", float(i))] + ([(f"{name}-direct", 0.5)] if i == 0 else [])
        assert sorted((s["name"], s["value"]) for s in t["scores"]) == sorted(expected)
