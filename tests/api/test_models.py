"""The models API and cost at ingestion, through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.contract import assert_response_matches
from tests.factories import event, new_id, ts
from tracehouse.pricing.builtin import builtin_models

GPT_4O = next(m for m in builtin_models() if m.model_name == "gpt-4o")
TIERS = [
    {
        "name": "Standard",
        "isDefault": True,
        "priority": 0,
        "conditions": [],
        "prices": {"input": 0.001, "output": 0.002},
    },
    {
        "name": "Batch",
        "isDefault": False,
        "priority": 1,
        "conditions": [
            {"source": "metadata", "key": "mode", "operator": "in", "values": ["batch"]}
        ],
        "prices": {"input": 0.0005, "output": 0.001},
    },
]


def get(project, url: str, **kw: Any) -> Any:
    r = project.get(url, **kw)
    assert r.status_code == 200, r.text
    assert_response_matches(r)
    return r.json()


def create_model(project, **body: Any) -> dict[str, Any]:
    r = project.post("/api/public/models", json=body)
    assert r.status_code == 200, r.text
    assert_response_matches(r)
    return r.json()


def generation(project, trace_id: str, obs_id: str, **body: Any) -> None:
    r = project.ingest(
        event("trace-create", {"id": trace_id, "name": "priced"}),
        event("generation-create", {"id": obs_id, "traceId": trace_id, "startTime": ts(0), **body}),
    )
    assert r.status_code == 207 and r.json()["errors"] == [], r.text


def observation(project, obs_id: str) -> dict[str, Any]:
    return get(project, f"/api/public/observations/{obs_id}")


# -- the models API ----------------------------------------------------------------------------


def test_built_in_models_are_listed_and_readable(project):
    page = get(project, "/api/public/models", params={"limit": 100})
    assert page["meta"]["totalItems"] == len(builtin_models())
    assert all(m["isLangfuseManaged"] for m in page["data"])
    second = get(project, "/api/public/models", params={"limit": 100, "page": 2})
    names = {m["modelName"] for m in page["data"] + second["data"]}
    assert {"gpt-4o", "claude-3-5-sonnet-20240620", "gemini-2.5-pro"} <= names
    one = get(project, f"/api/public/models/{GPT_4O.id}")
    assert one["matchPattern"] == "(?i)^(openai/)?(gpt-4o)$"
    assert one["inputPrice"] == 2.5e-06 and one["prices"]["output"] == {"price": 1e-05}
    assert [t["name"] for t in one["pricingTiers"]] == ["Standard", "Fast mode"]
    assert one["tokenizerId"] == "openai"


def test_create_get_list_delete_a_project_model(project, other_project):
    created = create_model(
        project,
        modelName="house-llm",
        matchPattern="(?i)^house-llm(-v\\d+)?$",
        unit="TOKENS",
        pricingTiers=TIERS,
        tokenizerId="openai",
        tokenizerConfig={"tokenizerModel": "gpt-4o"},
    )
    assert created["isLangfuseManaged"] is False
    assert created["inputPrice"] == 0.001 and created["outputPrice"] == 0.002
    assert [t["name"] for t in created["pricingTiers"]] == ["Standard", "Batch"]
    assert all(t["id"] for t in created["pricingTiers"])
    assert get(project, f"/api/public/models/{created['id']}") == created
    first = get(project, "/api/public/models", params={"limit": 1})
    assert first["data"] == [created]  # the project's own models come first
    assert first["meta"]["totalItems"] == len(builtin_models()) + 1
    # another project sees only the built-ins
    assert other_project.get(f"/api/public/models/{created['id']}").status_code == 404
    assert get(other_project, "/api/public/models")["meta"]["totalItems"] == len(builtin_models())

    assert project.delete(f"/api/public/models/{created['id']}").status_code == 204
    assert project.get(f"/api/public/models/{created['id']}").status_code == 404
    assert project.delete(f"/api/public/models/{created['id']}").status_code == 404


def test_built_in_models_cannot_be_deleted(project):
    r = project.delete(f"/api/public/models/{GPT_4O.id}")
    assert r.status_code == 403
    assert "override" in r.json()["message"]
    assert project.get(f"/api/public/models/{GPT_4O.id}").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"modelName": "x", "matchPattern": "(unclosed", "inputPrice": 1}, "matchPattern"),
        ({"modelName": "x", "matchPattern": "^x$", "inputPrice": -1}, "inputPrice"),
        ({"modelName": "x", "matchPattern": "^x$", "inputPrice": 1, "unit": "LITRES"}, "unit"),
        ({"modelName": "x", "matchPattern": "^x$"}, "pricingTiers"),
        ({"matchPattern": "^x$", "inputPrice": 1}, "modelName"),
        (
            {
                "modelName": "x",
                "matchPattern": "^x$",
                "pricingTiers": [TIERS[0], TIERS[1], {**TIERS[1], "name": "Dup", "priority": 2}],
            },
            "pricingTiers[2].conditions",
        ),
        (
            {
                "modelName": "x",
                "matchPattern": "^x$",
                "pricingTiers": [{**TIERS[0], "prices": {"input": -0.5}}],
            },
            "pricingTiers[0].prices.input",
        ),
    ],
)
def test_invalid_model_is_a_400_naming_the_field_and_changes_nothing(project, body, field):
    before = get(project, "/api/public/models", params={"limit": 1})["meta"]["totalItems"]
    r = project.post("/api/public/models", json=body)
    assert r.status_code == 400, r.text
    assert_response_matches(r)
    assert r.json()["message"].startswith(field + ":"), r.json()["message"]
    assert get(project, "/api/public/models", params={"limit": 1})["meta"]["totalItems"] == before


def test_same_name_and_start_date_twice_is_refused(project):
    body = {"modelName": "twin", "matchPattern": "^twin$", "inputPrice": 1}
    create_model(project, **body)
    r = project.post("/api/public/models", json=body)
    assert r.status_code == 400 and r.json()["message"].startswith("modelName:")
    create_model(project, **body, startDate="2026-01-01T00:00:00Z")  # a later price is fine


# -- cost at ingestion -------------------------------------------------------------------------


def test_generation_is_priced_by_the_built_in_model(project):
    trace_id, obs_id = new_id(), new_id()
    generation(
        project,
        trace_id,
        obs_id,
        model="openai/gpt-4o",
        usageDetails={"input": 1000, "output": 100, "input_cached_tokens": 200},
    )
    obs = observation(project, obs_id)
    assert obs["modelId"] == GPT_4O.id
    assert obs["inputPrice"] == 2.5e-06 and obs["outputPrice"] == 1e-05
    expected = {
        "input": 1000 * 2.5e-06,
        "output": 100 * 1e-05,
        "input_cached_tokens": 200 * 1.25e-06,
    }
    expected["total"] = sum(expected.values())
    assert obs["costDetails"] == pytest.approx(expected)
    assert obs["calculatedInputCost"] == pytest.approx(
        expected["input"] + expected["input_cached_tokens"]
    )
    assert obs["calculatedOutputCost"] == pytest.approx(expected["output"])
    assert obs["calculatedTotalCost"] == pytest.approx(expected["total"])
    trace = get(project, f"/api/public/traces/{trace_id}")
    assert trace["totalCost"] == pytest.approx(expected["total"])
    listed = get(project, "/api/public/traces", params={"name": "priced", "limit": 100})
    assert next(t for t in listed["data"] if t["id"] == trace_id)["totalCost"] == pytest.approx(
        expected["total"]
    )
    v2 = get(
        project,
        "/api/public/v2/observations",
        params={"traceId": trace_id, "fields": "core,model,usage"},
    )["data"][0]
    assert v2["totalCost"] == pytest.approx(expected["total"])
    assert v2["inputPrice"] == "0.0000025" and v2["usagePricingTierName"] == "Standard"


def test_cost_sent_by_the_client_wins(project):
    trace_id, obs_id = new_id(), new_id()
    generation(
        project,
        trace_id,
        obs_id,
        model="gpt-4o",
        usageDetails={"input": 1000, "output": 1000},
        costDetails={"input": 0.25, "output": 0.5},
    )
    obs = observation(project, obs_id)
    assert obs["costDetails"] == {"input": 0.25, "output": 0.5, "total": 0.75}
    assert obs["calculatedTotalCost"] == 0.75


def test_missing_usage_is_counted_with_the_tokenizer(project):
    trace_id, obs_id = new_id(), new_id()
    generation(
        project,
        trace_id,
        obs_id,
        model="gpt-4o",
        input=[{"role": "user", "content": "hello world"}],
        output="hello world",
    )
    obs = observation(project, obs_id)
    # 3 (reply priming) + 3 (message) + "user" (1) + "hello world" (2) = 9 prompt tokens
    assert obs["usageDetails"] == {"input": 9, "output": 2, "total": 11}
    assert obs["calculatedTotalCost"] == pytest.approx(9 * 2.5e-06 + 2 * 1e-05)


def test_updates_that_change_usage_or_model_re_price(project):
    trace_id, obs_id = new_id(), new_id()
    generation(project, trace_id, obs_id, model="gpt-4o", usageDetails={"input": 10, "output": 10})
    assert observation(project, obs_id)["calculatedTotalCost"] == pytest.approx(
        10 * 2.5e-06 + 10 * 1e-05
    )
    update = {"id": obs_id, "traceId": trace_id, "usageDetails": {"input": 100, "output": 10}}
    project.ingest(event("generation-update", update, at=1))
    assert observation(project, obs_id)["calculatedTotalCost"] == pytest.approx(
        100 * 2.5e-06 + 10 * 1e-05
    )
    change_model = {"id": obs_id, "traceId": trace_id, "model": "gpt-4o-mini"}
    project.ingest(event("generation-update", change_model, at=2))
    obs = observation(project, obs_id)
    mini = next(m for m in builtin_models() if m.model_name == "gpt-4o-mini")
    assert obs["modelId"] == mini.id
    assert obs["calculatedInputCost"] == pytest.approx(100 * mini.default_tier.prices["input"])


def test_project_model_overrides_the_built_in_for_new_data(project, other_project):
    trace_id, before_id, after_id = new_id(), new_id(), new_id()
    generation(
        project, trace_id, before_id, model="gpt-4o", usageDetails={"input": 10, "output": 10}
    )
    custom = create_model(
        project, modelName="gpt-4o", matchPattern="(?i)^(openai/)?(gpt-4o)$", pricingTiers=TIERS
    )
    generation(
        project, trace_id, after_id, model="gpt-4o", usageDetails={"input": 10, "output": 10}
    )
    after = observation(project, after_id)
    assert after["modelId"] == custom["id"]
    assert after["calculatedTotalCost"] == pytest.approx(10 * 0.001 + 10 * 0.002)
    # already stored data keeps its price; other projects keep the built-in one
    assert observation(project, before_id)["modelId"] == GPT_4O.id
    other_trace, other_obs = new_id(), new_id()
    generation(other_project, other_trace, other_obs, model="gpt-4o", usageDetails={"input": 10})
    assert observation(other_project, other_obs)["modelId"] == GPT_4O.id
    # metadata selects the custom model's conditional tier
    batch_id = new_id()
    generation(
        project,
        trace_id,
        batch_id,
        model="gpt-4o",
        usageDetails={"input": 10, "output": 10},
        metadata={"mode": "batch"},
    )
    assert observation(project, batch_id)["calculatedTotalCost"] == pytest.approx(
        10 * 0.0005 + 10 * 0.001
    )
    # deleting the override brings the built-in back for new data
    assert project.delete(f"/api/public/models/{custom['id']}").status_code == 204
    again = new_id()
    generation(project, trace_id, again, model="gpt-4o", usageDetails={"input": 10})
    assert observation(project, again)["modelId"] == GPT_4O.id


def test_tiered_built_in_price_through_ingestion(project):
    trace_id, small, large = new_id(), new_id(), new_id()
    generation(
        project, trace_id, small, model="gemini-2.5-pro", usageDetails={"input": 1000, "output": 10}
    )
    generation(
        project,
        trace_id,
        large,
        model="gemini-2.5-pro",
        usageDetails={"input": 250_000, "output": 10},
    )
    v2 = get(
        project,
        "/api/public/v2/observations",
        params={"traceId": trace_id, "fields": "core,usage"},
    )["data"]
    tiers = {o["id"]: o["usagePricingTierName"] for o in v2}
    assert tiers == {small: "Standard", large: "Large Context"}
    assert observation(project, large)["calculatedInputCost"] == pytest.approx(250_000 * 2.5e-06)


def test_otlp_generation_is_priced_the_same_way(project):
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "300"}},
    ]
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "chat gpt-4o-mini",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": attributes,
    }
    body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "app"}, "spans": [span]}]}]}
    r = project.post("/api/public/otel/v1/traces", json=body)
    assert r.status_code == 200, r.text
    mini = next(m for m in builtin_models() if m.model_name == "gpt-4o-mini")
    obs = observation(project, span_id)
    assert obs["type"] == "GENERATION" and obs["modelId"] == mini.id
    prices = mini.default_tier.prices
    expected = 1200 * prices["input"] + 300 * prices["output"]
    assert obs["calculatedTotalCost"] == pytest.approx(expected)
    assert get(project, f"/api/public/traces/{trace_id}")["totalCost"] == pytest.approx(expected)
