"""The Langfuse Python SDK 2.x, unchanged, against a real `tracehouse serve`.

The SDK runs in its own cached venv (tests/compat/sdk_envs.py) as a subprocess; it posts its
JSON batches to /api/public/ingestion. Everything is then read back through tracehouse's HTTP
API (validated against Langfuse's OpenAPI contract) and through the SDK's own API client.
"""

from __future__ import annotations

import textwrap
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

LOW_LEVEL = textwrap.dedent(
    """
    import datetime as dt, json
    from langfuse import Langfuse

    lf = Langfuse(release="rel-2.0", environment="staging")
    assert lf.auth_check()

    trace = lf.trace(
        name="sdk2-trace", user_id="user-sdk2", session_id=SESSION,
        tags=["beta", "alpha"], metadata={"team": "core", "nested": {"depth": 1}},
        version="v7", public=True, input={"question": "hi?"}, output={"answer": "hello"},
    )
    outer = trace.span(name="outer", input={"step": 1}, metadata={"kind": "outer"})
    inner = outer.span(name="inner", input="inner-in")
    inner.update(metadata={"extra": True}, level="WARNING", status_message="slowish")
    inner.end(output="inner-out")

    t0 = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=dt.timezone.utc)
    gen = outer.generation(
        name="chat", model="gpt-4o", model_parameters={"temperature": 0.2, "max_tokens": 256},
        input=[{"role": "user", "content": "hi?"}], usage={"input": 11, "output": 5},
        start_time=t0, completion_start_time=t0 + dt.timedelta(milliseconds=250),
        metadata={"provider": "openai"}, version="g1",
    )
    gen.end(output={"role": "assistant", "content": "hello"}, end_time=t0 + dt.timedelta(seconds=1))
    outer.end(output={"step": "done"})

    openai_gen = trace.generation(
        name="openai-usage", model="gpt-4o-mini",
        usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    )
    openai_gen.end(output="ok")

    details_gen = trace.generation(
        name="details", model="my-custom-model",
        usage_details={"input": 20, "output": 4, "input_cached_tokens": 6},
        cost_details={"input": 0.002, "output": 0.001},
    )
    details_gen.end()

    evt = trace.event(name="checkpoint", input={"at": "middle"}, level="DEBUG")
    trace.score(name="quality", value=0.75, comment="fine")
    lf.score(trace_id=trace.id, observation_id=gen.id, name="tone", value="friendly")
    lf.score(trace_id=trace.id, name="thumbs", value=1, data_type="BOOLEAN")
    trace.update(output={"answer": "hello", "final": True}, metadata={"late": "yes"})

    lf.flush()
    lf.shutdown()
    print(json.dumps({
        "trace": trace.id, "outer": outer.id, "inner": inner.id, "gen": gen.id,
        "openai_gen": openai_gen.id, "details_gen": details_gen.id, "event": evt.id,
    }))
    """
)

DECORATORS = textwrap.dedent(
    """
    import asyncio, json
    from langfuse.decorators import langfuse_context, observe

    ids = {}

    @observe(as_type="generation", name="fake-llm")
    def llm(prompt):
        langfuse_context.update_current_observation(
            model="gpt-4o", usage={"input": 3, "output": 2}, metadata={"decorated": True},
            model_parameters={"temperature": 0},
        )
        ids["llm"] = langfuse_context.get_current_observation_id()
        return prompt.upper()

    @observe()
    def rerank(docs):
        ids["rerank"] = langfuse_context.get_current_observation_id()
        return sorted(docs)

    @observe()
    def retrieve(q):
        ids["retrieve"] = langfuse_context.get_current_observation_id()
        langfuse_context.update_current_observation(metadata={"hits": 2}, level="WARNING")
        return rerank(["doc-b", "doc-a"])

    @observe(name="async-step")
    async def async_step(x):
        await asyncio.sleep(0)
        ids["async_step"] = langfuse_context.get_current_observation_id()
        return x * 2

    @observe()
    def pipeline(question):
        ids["trace"] = langfuse_context.get_current_trace_id()
        langfuse_context.update_current_trace(
            name="decorated-pipeline", user_id="deco-user", session_id=SESSION,
            tags=["decorated"], metadata={"via": "observe"}, version="d1", release="deco-rel",
        )
        docs = retrieve(question)
        answer = llm(question + " " + " ".join(docs))
        langfuse_context.score_current_trace(name="deco-score", value=0.5)
        return answer

    @observe(name="async-root")
    async def async_root():
        ids["async_trace"] = langfuse_context.get_current_trace_id()
        return await async_step(21)

    out = pipeline("what?")
    async_out = asyncio.run(async_root())
    langfuse_context.flush()
    ids.update(out=out, async_out=async_out)
    print(json.dumps(ids))
    """
)

SDK_READ = textwrap.dedent(
    """
    import json, sys
    from langfuse import Langfuse

    lf = Langfuse()
    out = {}
    t = lf.fetch_trace(TRACE).data
    out["trace"] = {
        "id": t.id, "name": t.name, "user_id": t.user_id, "session_id": t.session_id,
        "tags": sorted(t.tags), "public": t.public, "release": t.release,
        "version": t.version, "n_obs": len(t.observations), "n_scores": len(t.scores),
        "obs_types": sorted(o.type for o in t.observations),
        "score_names": sorted(s.name for s in t.scores),
        "metadata": t.metadata,
    }
    traces = lf.fetch_traces(user_id="user-sdk2", limit=10)
    out["traces"] = {"ids": [x.id for x in traces.data], "total": traces.meta.total_items}
    traces = lf.fetch_traces(tags=["alpha"], environment="staging", order_by="timestamp.desc")
    out["traces_tag"] = [x.id for x in traces.data]
    obs = lf.fetch_observations(trace_id=TRACE, type="GENERATION", limit=50)
    out["generations"] = sorted(
        [o.id, o.name, o.model, o.usage_details, o.parent_observation_id] for o in obs.data
    )
    o = lf.fetch_observation(GEN).data
    out["gen"] = {
        "model": o.model, "model_parameters": o.model_parameters,
        "usage_details": o.usage_details, "start": o.start_time.isoformat(),
        "cst": o.completion_start_time.isoformat(), "end": o.end_time.isoformat(),
        "output": o.output, "input": o.input, "parent": o.parent_observation_id,
    }
    s = lf.fetch_sessions(limit=50)
    out["sessions"] = [x.id for x in s.data]
    gens = lf.get_generations(trace_id=TRACE)
    out["get_generations"] = len(gens.data)
    print(json.dumps(out, default=str))
    """
)


@pytest.fixture(scope="module")
def low_level(server: Server, sdk2_python: Path) -> dict[str, Any]:
    result = run_sdk_script(sdk2_python, sdk_script(LOW_LEVEL, SESSION="sess-sdk2"), server)
    assert_no_sdk_errors(result)
    return result


def test_trace_fields_land(server: Server, low_level: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{low_level['trace']}").json()
    assert t["name"] == "sdk2-trace"
    assert t["userId"] == "user-sdk2"
    assert t["sessionId"] == "sess-sdk2"
    assert sorted(t["tags"]) == ["alpha", "beta"]
    assert t["metadata"]["team"] == "core"
    assert t["metadata"]["nested"] == {"depth": 1}
    assert t["metadata"]["late"] == "yes"
    assert t["version"] == "v7"
    assert t["release"] == "rel-2.0"
    assert t["public"] is True
    assert t["environment"] == "staging"
    assert t["input"] == {"question": "hi?"}
    assert t["output"] == {"answer": "hello", "final": True}


def test_observation_tree_and_types(server: Server, low_level: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{low_level['trace']}").json()
    obs = by_id(t["observations"])
    ids = low_level
    assert set(obs) == {
        ids["outer"],
        ids["inner"],
        ids["gen"],
        ids["openai_gen"],
        ids["details_gen"],
        ids["event"],
    }
    expected = {
        "outer": ("SPAN", None),
        "inner": ("SPAN", ids["outer"]),
        "gen": ("GENERATION", ids["outer"]),
        "openai_gen": ("GENERATION", None),
        "details_gen": ("GENERATION", None),
        "event": ("EVENT", None),
    }
    for key, (type_, parent) in expected.items():
        o = obs[ids[key]]
        assert o["type"] == type_, key
        assert o["parentObservationId"] == parent, key
        assert o["traceId"] == ids["trace"], key
        assert o["environment"] == "staging", key
    inner = obs[ids["inner"]]
    assert inner["name"] == "inner"
    assert inner["input"] == "inner-in"
    assert inner["output"] == "inner-out"
    assert inner["level"] == "WARNING"
    assert inner["statusMessage"] == "slowish"
    assert inner["metadata"]["extra"] is True
    assert inner["endTime"] is not None
    outer = obs[ids["outer"]]
    assert outer["input"] == {"step": 1}
    assert outer["output"] == {"step": "done"}
    assert outer["metadata"]["kind"] == "outer"
    assert outer["endTime"] is not None
    event = obs[ids["event"]]
    assert event["name"] == "checkpoint"
    assert event["level"] == "DEBUG"
    assert event["input"] == {"at": "middle"}


def test_generation_fields_and_usage(server: Server, low_level: dict[str, Any]) -> None:
    g = server.get(f"/api/public/observations/{low_level['gen']}").json()
    assert g["type"] == "GENERATION"
    assert g["name"] == "chat"
    assert g["model"] == "gpt-4o"
    # SDK 2.x's MapValue is str | int | bool | list[str]: pydantic turns 0.2 into "0.2" before
    # sending, so the string is what the server received and must return.
    assert g["modelParameters"] == {"temperature": "0.2", "max_tokens": 256}
    assert g["input"] == [{"role": "user", "content": "hi?"}]
    assert g["output"] == {"role": "assistant", "content": "hello"}
    assert g["metadata"]["provider"] == "openai"
    assert g["version"] == "g1"
    assert g["startTime"].startswith("2026-03-01T10:00:00")
    assert g["completionStartTime"].startswith("2026-03-01T10:00:00.25")
    assert g["endTime"].startswith("2026-03-01T10:00:01")
    assert g["usageDetails"] == {"input": 11, "output": 5, "total": 16}

    o = server.get(f"/api/public/observations/{low_level['openai_gen']}").json()
    assert o["model"] == "gpt-4o-mini"
    assert o["output"] == "ok"
    assert o["usageDetails"] == {"input": 7, "output": 3, "total": 10}

    d = server.get(f"/api/public/observations/{low_level['details_gen']}").json()
    assert d["usageDetails"]["input"] == 20
    assert d["usageDetails"]["output"] == 4
    assert d["usageDetails"]["input_cached_tokens"] == 6
    assert d["costDetails"]["input"] == pytest.approx(0.002)
    assert d["costDetails"]["output"] == pytest.approx(0.001)
    assert d["costDetails"]["total"] == pytest.approx(0.003)


def test_scores_land(server: Server, low_level: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{low_level['trace']}").json()
    scores = {s["name"]: s for s in t["scores"]}
    assert set(scores) == {"quality", "tone", "thumbs"}
    assert scores["quality"]["value"] == 0.75
    assert scores["quality"]["dataType"] == "NUMERIC"
    assert scores["quality"]["comment"] == "fine"
    assert scores["tone"]["dataType"] == "CATEGORICAL"
    assert scores["tone"]["stringValue"] == "friendly"
    assert scores["tone"]["observationId"] == low_level["gen"]
    assert scores["thumbs"]["dataType"] == "BOOLEAN"
    assert scores["thumbs"]["value"] == 1
    for s in scores.values():
        assert s["source"] == "API"
        assert s["environment"] == "staging"

    listed = server.get("/api/public/v2/scores", params={"traceId": low_level["trace"]}).json()
    assert sorted(s["name"] for s in listed["data"]) == ["quality", "thumbs", "tone"]


def test_session_and_list_filters(server: Server, low_level: dict[str, Any]) -> None:
    s = server.get("/api/public/sessions/sess-sdk2").json()
    assert s["id"] == "sess-sdk2"
    assert low_level["trace"] in [t["id"] for t in s["traces"]]
    listed = server.get(
        "/api/public/traces", params={"userId": "user-sdk2", "environment": "staging"}
    ).json()
    assert [t["id"] for t in listed["data"]] == [low_level["trace"]]
    gens = server.get(
        "/api/public/observations",
        params={"traceId": low_level["trace"], "type": "GENERATION"},
    ).json()
    assert len(gens["data"]) == 3


def test_read_back_through_the_sdk_client(
    server: Server, sdk2_python: Path, low_level: dict[str, Any]
) -> None:
    result = run_sdk_script(
        sdk2_python, sdk_script(SDK_READ, TRACE=low_level["trace"], GEN=low_level["gen"]), server
    )
    t = result["trace"]
    assert t["id"] == low_level["trace"]
    assert t["name"] == "sdk2-trace"
    assert t["user_id"] == "user-sdk2"
    assert t["session_id"] == "sess-sdk2"
    assert t["tags"] == ["alpha", "beta"]
    assert t["public"] is True
    assert t["release"] == "rel-2.0"
    assert t["version"] == "v7"
    assert t["n_obs"] == 6
    assert t["obs_types"] == ["EVENT", "GENERATION", "GENERATION", "GENERATION", "SPAN", "SPAN"]
    assert t["score_names"] == ["quality", "thumbs", "tone"]
    assert result["traces"]["ids"] == [low_level["trace"]]
    assert result["traces"]["total"] == 1
    assert low_level["trace"] in result["traces_tag"]
    gens = {g[0]: g for g in result["generations"]}
    assert set(gens) == {low_level["gen"], low_level["openai_gen"], low_level["details_gen"]}
    assert gens[low_level["gen"]][1:3] == ["chat", "gpt-4o"]
    assert gens[low_level["gen"]][3] == {"input": 11, "output": 5, "total": 16}
    assert gens[low_level["gen"]][4] == low_level["outer"]
    g = result["gen"]
    assert g["model"] == "gpt-4o"
    assert g["model_parameters"] == {"temperature": "0.2", "max_tokens": 256}
    assert g["usage_details"] == {"input": 11, "output": 5, "total": 16}
    assert g["start"].startswith("2026-03-01T10:00:00")
    assert g["cst"].startswith("2026-03-01T10:00:00.25")
    assert g["output"] == {"role": "assistant", "content": "hello"}
    assert g["parent"] == low_level["outer"]
    assert "sess-sdk2" in result["sessions"]
    assert result["get_generations"] == 3


def test_observe_decorator_sync_async_nested(server: Server, sdk2_python: Path) -> None:
    ids = run_sdk_script(sdk2_python, sdk_script(DECORATORS, SESSION="sess-deco"), server)
    assert_no_sdk_errors(ids)
    assert ids["out"] == "WHAT? DOC-A DOC-B"
    assert ids["async_out"] == 42

    t = server.get(f"/api/public/traces/{ids['trace']}").json()
    assert t["name"] == "decorated-pipeline"
    assert t["userId"] == "deco-user"
    assert t["sessionId"] == "sess-deco"
    assert t["tags"] == ["decorated"]
    assert t["metadata"]["via"] == "observe"
    assert t["version"] == "d1"
    assert t["release"] == "deco-rel"
    assert t["output"] == "WHAT? DOC-A DOC-B"
    assert t["input"] is not None
    # SDK 2.x: the outermost decorated function is the trace itself; the functions it calls
    # become observations directly under the trace (no parent observation).
    obs = by_id(t["observations"])
    assert set(obs) == {ids["retrieve"], ids["rerank"], ids["llm"]}
    rerank = obs[ids["rerank"]]
    assert rerank["parentObservationId"] == ids["retrieve"]
    assert rerank["type"] == "SPAN"
    assert rerank["output"] == ["doc-a", "doc-b"]
    retrieve = obs[ids["retrieve"]]
    assert retrieve["name"] == "retrieve"
    assert retrieve["type"] == "SPAN"
    assert retrieve["parentObservationId"] is None
    assert retrieve["level"] == "WARNING"
    assert retrieve["metadata"]["hits"] == 2
    assert retrieve["output"] == ["doc-a", "doc-b"]
    assert retrieve["input"] is not None
    assert retrieve["endTime"] is not None
    llm = obs[ids["llm"]]
    assert llm["type"] == "GENERATION"
    assert llm["name"] == "fake-llm"
    assert llm["parentObservationId"] is None
    assert llm["model"] == "gpt-4o"
    assert llm["modelParameters"] == {"temperature": 0}
    assert llm["usageDetails"] == {"input": 3, "output": 2, "total": 5}
    assert llm["metadata"]["decorated"] is True
    assert llm["output"] == "WHAT? DOC-A DOC-B"
    assert llm["endTime"] is not None
    assert [s["name"] for s in t["scores"]] == ["deco-score"]

    a = server.get(f"/api/public/traces/{ids['async_trace']}").json()
    assert a["name"] == "async-root"
    assert a["output"] == 42
    aobs = by_id(a["observations"])
    assert set(aobs) == {ids["async_step"]}
    step = aobs[ids["async_step"]]
    assert step["name"] == "async-step"
    assert step["type"] == "SPAN"
    assert step["output"] == 42
    assert step["parentObservationId"] is None
