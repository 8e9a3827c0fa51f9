"""Integrations that post raw ingestion batches: the n8n workflow template and Dify's tracing.

n8n (seeds/000): after an AI run, a Code node normalises the execution into `perModelRuns` and,
per run step, builds one batch of `trace-create` (stable id `trace-<executionId>`, session
`session-<workflowId>`) + `generation-create` (model, input/output previews, usage, start/end
times derived from the step's latency), posted by an HTTP Request node with Basic auth. Built
with JavaScript: event ids are `crypto.randomUUID()`, timestamps `new Date().toISOString()`.

Dify (seeds/001): workflow/chatflow, message, moderation, suggested-question, dataset-retrieval,
tool and generate-name traces. Dify sends them through the Langfuse Python SDK 2.x data model,
so the batches here have the SDK's wire shape: camelCase bodies without null keys, uuid4 event
ids, UTC event timestamps ending in "Z", naive datetimes serialised with a "+00:00" offset, and
the SDK's batch `metadata`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.compat.conftest import Server

pytestmark = pytest.mark.compat

T0 = datetime(2026, 2, 10, 9, 30, 0, 123000, tzinfo=UTC)


# ------------------------------------------------------------------------------------------
# n8n
# ------------------------------------------------------------------------------------------


def _js_iso(t: datetime) -> str:
    """JavaScript's Date.prototype.toISOString(): milliseconds and "Z"."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _n8n_batch(execution: dict[str, Any], run: dict[str, Any], now: datetime) -> dict[str, Any]:
    trace_id = f"trace-{execution['id']}"
    end = datetime.fromisoformat(run["finishedAt"].replace("Z", "+00:00"))
    start = end - timedelta(milliseconds=run["latencyMs"])
    return {
        "batch": [
            {
                "id": str(uuid.uuid4()),
                "timestamp": _js_iso(now),
                "type": "trace-create",
                "body": {
                    "id": trace_id,
                    "timestamp": execution["startedAt"],
                    "name": execution["workflowName"],
                    "sessionId": f"session-{execution['workflowId']}",
                    "userId": "n8n",
                    "tags": ["n8n", execution["mode"]],
                    "metadata": {
                        "executionId": execution["id"],
                        "workflowId": execution["workflowId"],
                        "status": execution["status"],
                        "totalTokens": execution["totalTokens"],
                    },
                    "input": {"executionId": execution["id"]},
                },
            },
            {
                "id": str(uuid.uuid4()),
                "timestamp": _js_iso(now),
                "type": "generation-create",
                "body": {
                    "id": f"gen-{execution['id']}-{run['index']}",
                    "traceId": trace_id,
                    "name": run["nodeName"],
                    "model": run["model"],
                    "startTime": _js_iso(start),
                    "endTime": _js_iso(end),
                    "input": run["inputPreview"],
                    "output": run["outputPreview"],
                    "usage": {
                        "input": run["promptTokens"],
                        "output": run["completionTokens"],
                        "total": run["totalTokens"],
                        "unit": "TOKENS",
                    },
                    "metadata": {"node": run["nodeName"], "latencyMs": run["latencyMs"]},
                },
            },
        ]
    }


def test_n8n_workflow_batches(server: Server) -> None:
    execution = {
        "id": str(4200 + int(uuid.uuid4().int % 1000)),
        "workflowId": "wf-" + uuid.uuid4().hex[:8],
        "workflowName": "Support agent",
        "status": "success",
        "mode": "trigger",
        "startedAt": _js_iso(T0),
        "totalTokens": 380,
    }
    runs: list[dict[str, Any]] = [
        {
            "index": i,
            "nodeName": name,
            "model": model,
            "promptTokens": p,
            "completionTokens": c,
            "totalTokens": p + c,
            "latencyMs": latency,
            "finishedAt": _js_iso(T0 + timedelta(seconds=2 * (i + 1))),
            "inputPreview": f"prompt {i}",
            "outputPreview": f"answer {i}",
        }
        for i, (name, model, p, c, latency) in enumerate(
            [
                ("OpenAI Chat Model", "gpt-4o-mini", 120, 40, 1350),
                ("Anthropic Chat Model", "claude-3-5-sonnet-20241022", 150, 50, 1820),
                ("OpenAI Chat Model1", "gpt-4o-mini", 15, 5, 410),
            ]
        )
    ]
    # One HTTP request per run step, as the Loop Over Items + HTTP Request nodes do.
    for i, run in enumerate(runs):
        r = server.http.post(
            "/api/public/ingestion",
            json=_n8n_batch(execution, run, T0 + timedelta(minutes=1, seconds=i)),
        )
        assert r.status_code == 207, r.text
        assert r.json()["errors"] == []
        assert len(r.json()["successes"]) == 2

    trace_id = f"trace-{execution['id']}"
    t = server.get(f"/api/public/traces/{trace_id}").json()
    assert t["name"] == "Support agent"
    assert t["sessionId"] == f"session-{execution['workflowId']}"
    assert t["userId"] == "n8n"
    assert sorted(t["tags"]) == ["n8n", "trigger"]
    assert t["timestamp"].startswith("2026-02-10T09:30:00.123")
    assert t["metadata"]["executionId"] == execution["id"]
    assert t["metadata"]["workflowId"] == execution["workflowId"]
    assert t["input"] == {"executionId": execution["id"]}
    assert t["environment"] == "default"
    gens = {o["id"]: o for o in t["observations"]}
    assert len(gens) == 3
    for run in runs:
        g = gens[f"gen-{execution['id']}-{run['index']}"]
        assert g["type"] == "GENERATION"
        assert g["traceId"] == trace_id
        assert g["name"] == run["nodeName"]
        assert g["model"] == run["model"]
        assert g["input"] == run["inputPreview"]
        assert g["output"] == run["outputPreview"]
        assert g["usageDetails"] == {
            "input": run["promptTokens"],
            "output": run["completionTokens"],
            "total": run["totalTokens"],
        }
        assert g["endTime"] == run["finishedAt"] or g["endTime"].startswith(run["finishedAt"][:23])
        assert g["latency"] == pytest.approx(run["latencyMs"] / 1000, abs=0.002)
        assert g["metadata"]["latencyMs"] == run["latencyMs"]
        assert g["parentObservationId"] is None

    s = server.get(f"/api/public/sessions/session-{execution['workflowId']}").json()
    assert [x["id"] for x in s["traces"]] == [trace_id]
    listed = server.get(
        "/api/public/observations", params={"traceId": trace_id, "type": "GENERATION"}
    ).json()
    assert listed["meta"]["totalItems"] == 3
    # A later score-create on the stable trace id (the template's "Customizing" step 2).
    server.ingest(
        [
            {
                "id": str(uuid.uuid4()),
                "timestamp": _js_iso(T0 + timedelta(minutes=5)),
                "type": "score-create",
                "body": {"traceId": trace_id, "name": "user-feedback", "value": 1},
            }
        ]
    )
    t = server.get(f"/api/public/traces/{trace_id}").json()
    assert [(s["name"], s["value"]) for s in t["scores"]] == [("user-feedback", 1)]


# ------------------------------------------------------------------------------------------
# Dify
# ------------------------------------------------------------------------------------------


def _naive(t: datetime) -> str:
    """How the SDK serialises Dify's naive UTC datetimes on a UTC host."""
    return t.replace(tzinfo=None).isoformat() + "+00:00"


class DifyClient:
    """Collects events with the Langfuse SDK 2.x wire shape and posts them as one batch."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.events: list[dict[str, Any]] = []

    def _add(self, type_: str, body: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        self.events.append(
            {
                "id": str(uuid.uuid4()),
                "type": type_,
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "body": {k: v for k, v in body.items() if v is not None},
            }
        )

    def trace(self, **body: Any) -> None:
        self._add("trace-create", body)

    def span(self, **body: Any) -> str:
        body.setdefault("id", str(uuid.uuid4()))
        self._add("span-create", body)
        return str(body["id"])

    def generation(self, **body: Any) -> str:
        body.setdefault("id", str(uuid.uuid4()))
        self._add("generation-create", body)
        return str(body["id"])

    def flush(self) -> None:
        r = self.server.http.post(
            "/api/public/ingestion",
            json={
                "batch": self.events,
                "metadata": {
                    "batch_size": len(self.events),
                    "sdk_integration": "default",
                    "sdk_name": "python",
                    "sdk_version": "2.60.10",
                    "public_key": self.server.public_key,
                },
            },
            headers={"x-langfuse-sdk-name": "python", "x-langfuse-sdk-version": "2.60.10"},
        )
        assert r.status_code == 207, r.text
        assert r.json()["errors"] == []
        assert len(r.json()["successes"]) == len(self.events)
        self.events = []


@pytest.fixture(scope="module")
def dify(server: Server) -> dict[str, Any]:
    """One chatflow conversation as Dify traces it: every trace kind of seeds/001."""
    ids: dict[str, Any] = {
        "tenant": str(uuid.uuid4()),
        "conversation": str(uuid.uuid4()),
        "message": str(uuid.uuid4()),
        "workflow_id": str(uuid.uuid4()),
        "workflow_run": str(uuid.uuid4()),
        "app_log": str(uuid.uuid4()),
        "user": "end-user-" + uuid.uuid4().hex[:6],
        "plain_run": str(uuid.uuid4()),
    }
    c = DifyClient(server)
    start = datetime(2026, 2, 11, 8, 0, 0, 250000)

    # Workflow (chatflow) trace: the message is the trace, the workflow run its span.
    wf_meta = {
        "workflow_id": ids["workflow_id"],
        "conversation_id": ids["conversation"],
        "workflow_run_id": ids["workflow_run"],
        "tenant_id": ids["tenant"],
        "elapsed_time": 3.2,
        "status": "succeeded",
        "version": "2026-02-01 10:00:00",
        "total_tokens": 310,
        "file_list": [],
        "triggered_from": "app-run",
        "message_id": ids["message"],
    }
    c.trace(
        id=ids["message"],
        user_id=ids["user"],
        name=f"message_{ids['message']}",
        input={"sys.query": "What is RAG?", "sys.files": []},
        output={"answer": "Retrieval augmented generation."},
        metadata=wf_meta,
        session_id=ids["conversation"],
        tags=["message", "advanced-chat"],
    )
    c.span(
        id=ids["workflow_run"],
        trace_id=ids["message"],
        name=f"workflow_{ids['workflow_id']}",
        start_time=_naive(start),
        end_time=_naive(start + timedelta(seconds=3.2)),
        input={"sys.query": "What is RAG?"},
        output={"answer": "Retrieval augmented generation."},
        metadata=wf_meta,
        level="DEFAULT",
        status_message="",
    )
    ids["node_llm"] = c.generation(
        id=str(uuid.uuid4()),
        trace_id=ids["message"],
        parent_observation_id=ids["workflow_run"],
        name="llm",
        start_time=_naive(start + timedelta(seconds=1)),
        end_time=_naive(start + timedelta(seconds=3)),
        model="gpt-4o",
        model_parameters={"temperature": 0.7, "max_tokens": 512},
        input=[{"role": "system", "text": "Be brief."}, {"role": "user", "text": "What is RAG?"}],
        output={"text": "Retrieval augmented generation.", "finish_reason": "stop"},
        metadata={"node_type": "llm", "status": "succeeded", "title": "LLM"},
        level="DEFAULT",
        status_message="",
        usage={"input": 200, "output": 110, "total": 310, "unit": "TOKENS"},
    )
    ids["node_code"] = c.span(
        id=str(uuid.uuid4()),
        trace_id=ids["message"],
        parent_observation_id=ids["workflow_run"],
        name="code",
        start_time=_naive(start + timedelta(seconds=0.1)),
        end_time=_naive(start + timedelta(seconds=0.2)),
        input={"x": 1},
        output={"result": 2},
        metadata={"node_type": "code", "status": "failed"},
        level="ERROR",
        status_message="NameError: name 'y' is not defined",
    )
    # Plain workflow app run (no message): the run is the trace, tagged [workflow].
    c.trace(
        id=ids["plain_run"],
        user_id=ids["user"],
        name=f"workflow_{ids['workflow_id']}",
        input={"topic": "tides"},
        output={"summary": "The moon."},
        metadata={**wf_meta, "workflow_run_id": ids["plain_run"], "message_id": None},
        session_id=ids["conversation"],
        tags=["workflow"],
    )

    # Message trace (basic chat): the LLM call is a generation of the message trace.
    msg_meta = {
        "conversation_id": ids["conversation"],
        "ls_provider": "openai",
        "ls_model_name": "gpt-4o",
        "status": "normal",
        "from_end_user_id": ids["user"],
        "from_account_id": None,
        "agent_based": False,
        "workflow_run_id": ids["workflow_run"],
        "from_source": "api",
        "message_id": ids["message"],
    }
    ids["message_llm"] = c.generation(
        name="llm",
        trace_id=ids["message"],
        start_time=_naive(start),
        end_time=_naive(start + timedelta(seconds=2)),
        model="gpt-4o",
        model_parameters={"temperature": 0.7},
        input=[{"role": "user", "content": "What is RAG?"}],
        output="Retrieval augmented generation.",
        metadata=msg_meta,
        level="DEFAULT",
        status_message="",
        usage={"input": 21, "output": 9, "total": 30, "unit": "TOKENS"},
    )
    # Moderation.
    ids["moderation"] = c.span(
        trace_id=ids["message"],
        name="moderation",
        start_time=_naive(start - timedelta(seconds=0.5)),
        end_time=_naive(start - timedelta(seconds=0.4)),
        input={"query": "What is RAG?"},
        output={
            "action": "direct_output",
            "flagged": False,
            "preset_response": "",
            "inputs": {"query": "What is RAG?"},
        },
        metadata={
            "message_id": ids["message"],
            "action": "direct_output",
            "preset_response": "",
        },
    )
    # Suggested questions: a generation counted in characters.
    ids["suggested"] = c.generation(
        trace_id=ids["message"],
        name="suggested_question",
        start_time=_naive(start + timedelta(seconds=3)),
        end_time=_naive(start + timedelta(seconds=4)),
        input="What is RAG?",
        output=["How does retrieval work?", "Which vector stores?"],
        metadata={**msg_meta, "from_account_id": "acc-1"},
        level="DEFAULT",
        status_message="",
        model="gpt-4o",
        usage={"input": 12, "output": 44, "total": 56, "unit": "CHARACTERS"},
    )
    # Dataset (knowledge base) retrieval.
    ids["retrieval"] = c.span(
        trace_id=ids["message"],
        name="dataset_retrieval",
        start_time=_naive(start + timedelta(seconds=0.3)),
        end_time=_naive(start + timedelta(seconds=0.9)),
        input={"query": "What is RAG?"},
        output={
            "documents": [
                {"page_content": "RAG combines...", "metadata": {"score": 0.87}, "provider": "dify"}
            ]
        },
        metadata=msg_meta,
    )
    # Tool invocation: name is the tool name.
    ids["tool"] = c.span(
        trace_id=ids["message"],
        name="google_search",
        start_time=_naive(start + timedelta(seconds=1)),
        end_time=_naive(start + timedelta(seconds=1.4)),
        input={"query": "RAG"},
        output="10 results",
        metadata={
            "message_id": ids["message"],
            "tool_name": "google_search",
            "tool_inputs": {"query": "RAG"},
            "tool_outputs": "10 results",
            "tool_config": {"provider": "google"},
            "time_cost": 0.4,
            "error": "",
            "tool_parameters": {},
            "message_file_id": None,
            "created_by_role": "end_user",
            "created_user_id": ids["user"],
        },
        level="DEFAULT",
        status_message="",
    )
    # Conversation title generation: its own trace keyed by the conversation.
    c.trace(
        id=ids["conversation"],
        user_id=ids["user"],
        name="generate_name",
        input="What is RAG?",
        output="RAG explained",
        metadata={"conversation_id": ids["conversation"], "tenant_id": ids["tenant"]},
        session_id=ids["conversation"],
        tags=["generate_name"],
    )
    ids["generate_name_span"] = c.span(
        trace_id=ids["conversation"],
        name="generate_name",
        start_time=_naive(start + timedelta(seconds=5)),
        end_time=_naive(start + timedelta(seconds=5.5)),
        input="What is RAG?",
        output="RAG explained",
        metadata={"conversation_id": ids["conversation"], "tenant_id": ids["tenant"]},
    )
    # Dify posts the whole conversation's events as the SDK flushes them: one batch.
    _camel(c.events)
    c.flush()
    return ids


def _camel(events: list[dict[str, Any]]) -> None:
    """The SDK sends pydantic models by alias: snake_case fields become camelCase."""
    aliases = {
        "user_id": "userId",
        "session_id": "sessionId",
        "trace_id": "traceId",
        "start_time": "startTime",
        "end_time": "endTime",
        "status_message": "statusMessage",
        "parent_observation_id": "parentObservationId",
        "model_parameters": "modelParameters",
    }
    for e in events:
        e["body"] = {aliases.get(k, k): v for k, v in e["body"].items()}


def test_dify_workflow_trace(server: Server, dify: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{dify['message']}").json()
    assert t["name"] == f"message_{dify['message']}"
    assert t["userId"] == dify["user"]
    assert t["sessionId"] == dify["conversation"]
    assert sorted(t["tags"]) == ["advanced-chat", "message"]
    assert t["input"] == {"sys.query": "What is RAG?", "sys.files": []}
    assert t["output"] == {"answer": "Retrieval augmented generation."}
    assert t["metadata"]["workflow_run_id"] == dify["workflow_run"]
    assert t["metadata"]["tenant_id"] == dify["tenant"]
    obs = {o["id"]: o for o in t["observations"]}
    wf = obs[dify["workflow_run"]]
    assert wf["type"] == "SPAN"
    assert wf["name"] == f"workflow_{dify['workflow_id']}"
    assert wf["startTime"].startswith("2026-02-11T08:00:00.25")
    assert wf["endTime"].startswith("2026-02-11T08:00:03.45")
    assert wf["latency"] == pytest.approx(3.2, abs=0.002)
    assert wf["parentObservationId"] is None
    llm = obs[dify["node_llm"]]
    assert llm["type"] == "GENERATION"
    assert llm["parentObservationId"] == dify["workflow_run"]
    assert llm["model"] == "gpt-4o"
    assert llm["usageDetails"] == {"input": 200, "output": 110, "total": 310}
    assert llm["output"] == {"text": "Retrieval augmented generation.", "finish_reason": "stop"}
    code = obs[dify["node_code"]]
    assert code["type"] == "SPAN"
    assert code["parentObservationId"] == dify["workflow_run"]
    assert code["level"] == "ERROR"
    assert code["statusMessage"] == "NameError: name 'y' is not defined"
    assert code["output"] == {"result": 2}

    plain = server.get(f"/api/public/traces/{dify['plain_run']}").json()
    assert plain["name"] == f"workflow_{dify['workflow_id']}"
    assert plain["tags"] == ["workflow"]
    assert plain["input"] == {"topic": "tides"}
    assert plain["output"] == {"summary": "The moon."}
    assert plain["observations"] == []


def test_dify_message_children(server: Server, dify: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{dify['message']}").json()
    obs = {o["id"]: o for o in t["observations"]}
    assert len(obs) == 8
    llm = obs[dify["message_llm"]]
    assert llm["type"] == "GENERATION"
    assert llm["name"] == "llm"
    assert llm["model"] == "gpt-4o"
    assert llm["output"] == "Retrieval augmented generation."
    assert llm["usageDetails"] == {"input": 21, "output": 9, "total": 30}
    assert llm["metadata"]["ls_provider"] == "openai"
    assert llm["metadata"]["conversation_id"] == dify["conversation"]
    assert llm["latency"] == pytest.approx(2.0, abs=0.002)

    mod = obs[dify["moderation"]]
    assert (mod["type"], mod["name"]) == ("SPAN", "moderation")
    assert mod["output"]["flagged"] is False
    assert mod["output"]["action"] == "direct_output"
    assert mod["metadata"]["action"] == "direct_output"

    sq = obs[dify["suggested"]]
    assert (sq["type"], sq["name"]) == ("GENERATION", "suggested_question")
    assert sq["output"] == ["How does retrieval work?", "Which vector stores?"]
    assert sq["usageDetails"] == {"input": 12, "output": 44, "total": 56}

    ret = obs[dify["retrieval"]]
    assert (ret["type"], ret["name"]) == ("SPAN", "dataset_retrieval")
    assert ret["input"] == {"query": "What is RAG?"}
    assert ret["output"]["documents"][0]["metadata"] == {"score": 0.87}

    tool = obs[dify["tool"]]
    assert (tool["type"], tool["name"]) == ("SPAN", "google_search")
    assert tool["output"] == "10 results"
    assert tool["metadata"]["tool_name"] == "google_search"
    assert tool["metadata"]["tool_config"] == {"provider": "google"}
    assert tool["metadata"]["created_by_role"] == "end_user"
    for o in obs.values():
        assert o["traceId"] == dify["message"]
        assert o["environment"] == "default"
        assert o["endTime"] is not None


def test_dify_generate_name_and_session(server: Server, dify: dict[str, Any]) -> None:
    t = server.get(f"/api/public/traces/{dify['conversation']}").json()
    assert t["name"] == "generate_name"
    assert t["tags"] == ["generate_name"]
    assert t["input"] == "What is RAG?"
    assert t["output"] == "RAG explained"
    assert t["metadata"] == {"conversation_id": dify["conversation"], "tenant_id": dify["tenant"]}
    assert [o["id"] for o in t["observations"]] == [dify["generate_name_span"]]

    s = server.get(f"/api/public/sessions/{dify['conversation']}").json()
    assert sorted(x["id"] for x in s["traces"]) == sorted(
        [dify["message"], dify["plain_run"], dify["conversation"]]
    )
    listed = server.get(
        "/api/public/traces", params={"userId": dify["user"], "tags": "message"}
    ).json()
    assert [x["id"] for x in listed["data"]] == [dify["message"]]
    gens = server.get(
        "/api/public/observations", params={"traceId": dify["message"], "type": "GENERATION"}
    ).json()
    assert sorted(g["name"] for g in gens["data"]) == ["llm", "llm", "suggested_question"]
    v2 = server.get(
        "/api/public/v2/observations",
        params={"traceId": dify["message"], "fields": "core,basic,usage"},
    ).json()
    assert len(v2["data"]) == 8
