"""The Langfuse JS/TS SDK (v5), unchanged, against a real `tracehouse serve`.

`js/realistic_trace.mjs` runs under Node with the newest `@langfuse/tracing`, `@langfuse/otel`
(LangfuseSpanProcessor on the OpenTelemetry NodeSDK) and `@langfuse/client`, installed once
from the npm registry into `<repo>/.cache/js-sdk/` (tests/compat/sdk_envs.py). It builds one
agent trace, exports it over OTLP/HTTP, scores it, reads it back with the JS client and prints
the ids; everything is then read back through the HTTP API, checked against the OpenAPI
contract.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import Server, by_id
from tests.compat.sdk_envs import node_env, node_package_version

pytestmark = pytest.mark.compat

SCRIPT = Path(__file__).parent / "js" / "realistic_trace.mjs"
JS_SDK_PACKAGES = {
    "@langfuse/tracing": "^5",
    "@langfuse/otel": "^5",
    "@langfuse/client": "^5",
    "@opentelemetry/api": "^1.9",
    # The newest NodeSDK of the OTel JS 2.x line: 0.300+ (OTel JS 3.x) wants
    # @opentelemetry/api 1.10, which the OTel 2.x peers of @langfuse/otel 5 exclude.
    "@opentelemetry/sdk-node": ">=0.200 <0.300",
}
MIN_NODE_MAJOR = 20  # the @langfuse packages' engines field
SESSION = "sess-js-sdk"
ENVIRONMENT = "staging"
RELEASE = "js-rel-1.4"
QUESTION = "Will it rain in Paris tomorrow?"
ANSWER = "Light rain is expected in the afternoon."


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """The cached npm project holding the Langfuse JS SDK (built on first use)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: install Node.js >= {MIN_NODE_MAJOR}", pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if major is None or int(major.group(1)) < MIN_NODE_MAJOR:
        pytest.fail(f"Node.js {version or '?'} is too old: need >= {MIN_NODE_MAJOR}", pytrace=False)
    try:
        return node_env("langfuse-5", JS_SDK_PACKAGES)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def js_run(
    server: Server, js_sdk: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    # ESM resolves packages next to the script: run a copy beside a link to the cached modules.
    workdir = tmp_path_factory.mktemp("js-sdk")
    (workdir / "node_modules").symlink_to(js_sdk / "node_modules", target_is_directory=True)
    script = workdir / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    env = server.sdk_env(
        LANGFUSE_TRACING_ENVIRONMENT=ENVIRONMENT, LANGFUSE_RELEASE=RELEASE, TH_SESSION_ID=SESSION
    )
    done = subprocess.run(
        ["node", str(script)], cwd=workdir, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"JS SDK script failed:\n{done.stdout}\n{done.stderr}"
    # Failed exports (the OTel diag logger) and SDK errors (e.g. a rejected score) go to stderr.
    problems = re.compile(r"error|fail|reject|otel warn", re.IGNORECASE)
    assert not problems.search(done.stderr), done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, "JS SDK script printed nothing"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_sdk_versions_are_the_pinned_lines(js_sdk: Path) -> None:
    for package in ("@langfuse/tracing", "@langfuse/otel", "@langfuse/client"):
        assert node_package_version(js_sdk, package).startswith("5."), package


def test_trace_fields_land(server: Server, js_run: dict[str, Any]) -> None:
    ids = js_run["ids"]
    assert re.fullmatch(r"[0-9a-f]{32}", ids["trace"])
    t = server.get(f"/api/public/traces/{ids['trace']}").json()
    assert t["name"] == "js-support-request"
    assert t["userId"] == "user-js"
    assert t["sessionId"] == SESSION
    assert sorted(t["tags"]) == ["agent", "js-sdk"]
    assert t["version"] == "agent-2.1"
    assert t["release"] == RELEASE
    assert t["public"] is True
    assert t["environment"] == ENVIRONMENT
    # setActiveTraceIO wins over the root observation's own input/output.
    assert t["input"] == {"question": QUESTION, "locale": "en"}
    assert t["output"] == {"answer": ANSWER}
    # Propagated trace metadata, plus the root observation's metadata (decoded from JSON text).
    assert t["metadata"]["team"] == "support"
    assert t["metadata"]["region"] == "eu"
    assert t["metadata"]["strategy"] == "react"
    assert t["metadata"]["maxSteps"] == 4
    assert t["metadata"]["limits"] == {"tokens": 2048}
    assert t["metadata"]["scope"]["name"] == "langfuse-sdk"
    assert t["metadata"]["scope"]["version"].startswith("5.")
    assert t["metadata"]["resourceAttributes"]["telemetry.sdk.language"] == "nodejs"
    assert "attributes" not in t["metadata"]  # Langfuse SDK spans carry no raw attribute map
    root = next(o for o in t["observations"] if o["id"] == ids["agent"])
    assert t["timestamp"] == root["startTime"]

    sessions = server.get(f"/api/public/sessions/{SESSION}").json()
    assert [x["id"] for x in sessions["traces"]] == [ids["trace"]]
    listed = server.get(
        "/api/public/traces",
        params={"userId": "user-js", "tags": "js-sdk", "environment": ENVIRONMENT},
    ).json()
    assert [x["id"] for x in listed["data"]] == [ids["trace"]]


def test_observation_tree_types_and_parents(server: Server, js_run: dict[str, Any]) -> None:
    ids = js_run["ids"]
    t = server.get(f"/api/public/traces/{ids['trace']}").json()
    obs = by_id(t["observations"])
    expected = {
        "agent": ("AGENT", "support-agent", None),
        "retriever": ("RETRIEVER", "vector-search", "agent"),
        "rerank": ("TOOL", "rerank", "retriever"),
        "weather_tool": ("TOOL", "weather-api", "agent"),
        "generation": ("GENERATION", "chat-completion", "agent"),
        "event": ("EVENT", "cache-miss", "agent"),
        "guardrail": ("GUARDRAIL", "pii-filter", "agent"),
    }
    assert set(obs) == {ids[key] for key in expected}
    for key, (type_, name, parent) in expected.items():
        o = obs[ids[key]]
        assert re.fullmatch(r"[0-9a-f]{16}", o["id"]), key
        assert (o["type"], o["name"]) == (type_, name), key
        assert o["parentObservationId"] == (ids[parent] if parent else None), key
        assert o["traceId"] == ids["trace"], key
        assert o["environment"] == ENVIRONMENT, key
        assert o["version"] == "agent-2.1", key  # propagated to every observation
        assert o["startTime"] is not None, key
        assert (o["endTime"] is None) == (type_ == "EVENT"), key

    agent = obs[ids["agent"]]
    assert agent["input"] == {"question": QUESTION}
    assert agent["output"] == {"answer": ANSWER, "steps": 3}
    assert agent["metadata"]["maxSteps"] == 4 and agent["metadata"]["limits"] == {"tokens": 2048}
    assert "team" not in agent["metadata"]  # trace metadata stays on the trace
    retriever = obs[ids["retriever"]]
    assert retriever["input"] == {"query": "paris weather forecast", "topK": 2}
    assert retriever["output"] == {"documents": ["doc-17", "doc-42"]}
    assert retriever["metadata"]["index"] == "forecasts"
    assert obs[ids["rerank"]]["input"] == ["doc-42", "doc-17"]
    assert obs[ids["rerank"]]["output"] == ["doc-17", "doc-42"]
    # observe() captured the wrapped function's argument and return value.
    weather = obs[ids["weather_tool"]]
    assert weather["input"] == "Paris"
    assert weather["output"] == {"city": "Paris", "rainMm": 2.5}
    event = obs[ids["event"]]
    assert event["input"] == {"key": "paris:tomorrow"}
    assert event["metadata"]["cache"] == "redis"
    assert obs[ids["guardrail"]]["input"] == ANSWER  # a string stays a string


def test_levels_and_status_messages(server: Server, js_run: dict[str, Any]) -> None:
    ids = js_run["ids"]
    levels = {
        key: server.get(f"/api/public/observations/{ids[key]}").json()
        for key in ("weather_tool", "guardrail", "event", "generation")
    }
    assert levels["weather_tool"]["level"] == "WARNING"
    assert levels["weather_tool"]["statusMessage"] == "retried once after a timeout"
    assert levels["guardrail"]["level"] == "ERROR"
    assert levels["guardrail"]["statusMessage"] == "classifier unavailable"
    assert levels["event"]["level"] == "DEBUG"
    assert levels["generation"]["level"] == "DEFAULT"
    assert levels["generation"]["statusMessage"] is None

    errors = server.get(
        "/api/public/observations", params={"traceId": ids["trace"], "level": "ERROR"}
    ).json()
    assert [o["id"] for o in errors["data"]] == [ids["guardrail"]]


def test_generation_model_usage_cost_and_timing(server: Server, js_run: dict[str, Any]) -> None:
    ids = js_run["ids"]
    g = server.get(f"/api/public/observations/{ids['generation']}").json()
    assert g["type"] == "GENERATION"
    assert g["model"] == "gpt-4o-mini"
    assert g["modelParameters"] == {"temperature": 0.2, "max_tokens": 256, "tool_choice": "auto"}
    assert g["input"] == [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": QUESTION},
    ]
    assert g["output"] == {"role": "assistant", "content": ANSWER}
    assert g["usageDetails"] == {"input": 42, "output": 9, "input_cached_tokens": 10, "total": 61}
    assert g["costDetails"] == {
        "input": pytest.approx(0.00042),
        "output": pytest.approx(0.00018),
        "total": pytest.approx(0.0006),
    }
    assert g["calculatedTotalCost"] == pytest.approx(0.0006)
    start, end = _time(g["startTime"]), _time(g["endTime"])
    assert end - start == timedelta(milliseconds=1200)
    assert _time(g["completionStartTime"]) - start == timedelta(milliseconds=350)
    assert g["timeToFirstToken"] == pytest.approx(0.35)
    root = server.get(f"/api/public/observations/{ids['agent']}").json()
    assert start - _time(root["startTime"]) == timedelta(milliseconds=1000)

    v2 = server.get(
        "/api/public/v2/observations",
        params={"traceId": ids["trace"], "type": "GENERATION", "fields": "core,model,usage"},
    ).json()
    assert [o["id"] for o in v2["data"]] == [ids["generation"]]

    t = server.get(f"/api/public/traces/{ids['trace']}").json()
    assert t["totalCost"] == pytest.approx(0.0006)


def test_scores_from_the_js_client(server: Server, js_run: dict[str, Any]) -> None:
    ids = js_run["ids"]
    t = server.get(f"/api/public/traces/{ids['trace']}").json()
    scores = {s["name"]: s for s in t["scores"]}
    assert set(scores) == {"helpfulness", "tone"}
    helpfulness = scores["helpfulness"]
    assert helpfulness["dataType"] == "NUMERIC"
    assert helpfulness["value"] == pytest.approx(0.9)
    assert helpfulness["comment"] == "clear answer"
    assert helpfulness["observationId"] is None
    tone = scores["tone"]
    assert tone["dataType"] == "CATEGORICAL"
    assert tone["stringValue"] == "friendly"
    assert tone["observationId"] == ids["generation"]
    for s in scores.values():
        assert s["source"] == "API"
        assert s["traceId"] == ids["trace"]
        assert s["environment"] == ENVIRONMENT

    listed = server.get("/api/public/v2/scores", params={"traceId": ids["trace"]}).json()
    assert sorted(s["name"] for s in listed["data"]) == ["helpfulness", "tone"]


def test_js_client_reads_the_trace_back(js_run: dict[str, Any]) -> None:
    ids, read = js_run["ids"], js_run["read"]
    assert read["name"] == "js-support-request"
    assert (read["userId"], read["sessionId"]) == ("user-js", SESSION)
    assert sorted(read["tags"]) == ["agent", "js-sdk"]
    assert read["environment"] == ENVIRONMENT
    assert read["input"] == {"question": QUESTION, "locale": "en"}
    assert read["scores"] == ["helpfulness", "tone"]
    assert read["observations"] == {
        ids["agent"]: "AGENT",
        ids["retriever"]: "RETRIEVER",
        ids["rerank"]: "TOOL",
        ids["weather_tool"]: "TOOL",
        ids["generation"]: "GENERATION",
        ids["event"]: "EVENT",
        ids["guardrail"]: "GUARDRAIL",
    }
