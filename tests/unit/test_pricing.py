"""Model matching, tiered pricing and token counting against the shipped price table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tracehouse.errors import InvalidInput
from tracehouse.pricing.builtin import builtin_models
from tracehouse.pricing.cost import price_observation
from tracehouse.pricing.definitions import ModelDefinition, parse_model
from tracehouse.pricing.registry import ModelRegistry
from tracehouse.pricing.tokens import count_tokens, encoding_name

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference" / "langfuse-default-model-prices.json"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def registry(*own: ModelDefinition) -> ModelRegistry:
    return ModelRegistry(builtin_models(), lambda _project: list(own))


def project_model(body: dict[str, Any], model_id: str = "m1", **kw: Any) -> ModelDefinition:
    return parse_model(
        body,
        project_id="p",
        model_id=model_id,
        now=kw.pop("now", NOW),
        make_id=lambda: f"tier-{time.monotonic_ns()}",
        **kw,
    )


# --------------------------------------------------------------------------------------------
# Matching.

MATCHES = [
    # OpenAI: plain names, provider prefix, any case, dated snapshots
    ("gpt-4o", "gpt-4o"),
    ("openai/gpt-4o", "gpt-4o"),
    ("GPT-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("gpt-4o-mini", "gpt-4o-mini"),
    ("openai/gpt-4o-mini", "gpt-4o-mini"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
    ("gpt-4-turbo-2024-04-09", "gpt-4-turbo-2024-04-09"),
    ("gpt-4", "gpt-4"),
    ("gpt-4-0613", "gpt-4-0613"),
    ("gpt-3.5-turbo", "gpt-3.5-turbo"),
    ("gpt-35-turbo", "gpt-3.5-turbo"),  # the Azure spelling
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo-0125"),
    ("gpt-4.1", "gpt-4.1"),
    ("gpt-4.1-2025-04-14", "gpt-4.1-2025-04-14"),
    ("gpt-4.1-nano", "gpt-4.1-nano"),
    ("o1", "o1"),
    ("o1-2024-12-17", "o1-2024-12-17"),
    ("o3-mini", "o3-mini"),
    ("o4-mini-2025-04-16", "o4-mini-2025-04-16"),
    ("gpt-5", "gpt-5"),
    ("gpt-5-2025-08-07", "gpt-5-2025-08-07"),
    ("gpt-5-mini", "gpt-5-mini"),
    ("gpt-5.1", "gpt-5.1"),
    ("text-embedding-3-small", "text-embedding-3-small"),
    ("text-embedding-ada-002", "text-embedding-ada-002"),
    ("ft:gpt-3.5-turbo-0613:acme::8abc", "ft:gpt-3.5-turbo-0613"),
    # Anthropic: API names, provider prefix, Bedrock and Vertex spellings
    ("claude-3-opus-20240229", "claude-3-opus-20240229"),
    ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620"),
    ("anthropic/claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620"),
    ("claude-3-haiku-20240307", "claude-3-haiku-20240307"),
    ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307"),
    ("us.anthropic.claude-3-opus-20240229-v1:0", "claude-3-opus-20240229"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1-20250805"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
    ("claude-3-7-sonnet-20250219", "claude-3.7-sonnet-20250219"),
    # Google: Gemini with and without prefixes, PaLM with a version suffix
    ("gemini-1.5-pro-latest", "gemini-1.5-pro-latest"),
    ("gemini-2.0-flash", "gemini-2.0-flash"),
    ("gemini-2.0-flash-001", "gemini-2.0-flash-001"),
    ("gemini-2.5-pro", "gemini-2.5-pro"),
    ("gemini-2.5-flash", "gemini-2.5-flash"),
    ("google/gemini-2.5-flash", "gemini-2.5-flash"),
    ("googleai/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ("chat-bison@001", "chat-bison"),
    # Unknown models are not priced (and not guessed from a near name)
    ("llama-3-70b", None),
    ("mistral-large", None),
    ("gpt-4o-extra", None),
    ("my-gpt-4o", None),
]


@pytest.mark.parametrize(("name", "expected"), MATCHES)
def test_builtin_models_match_real_model_names(name: str, expected: str | None) -> None:
    found = registry().match("p", name)
    assert (found.model_name if found else None) == expected


def test_the_built_in_table_is_the_reference_table_converted() -> None:
    reference = json.loads(REFERENCE.read_text())
    shipped = {m.id: m for m in builtin_models()}
    assert set(shipped) == {m["id"] for m in reference}
    for raw in reference:
        model = shipped[raw["id"]]
        assert model.model_name == raw["modelName"]
        assert model.match_pattern == raw["matchPattern"]
        tiers = {t.id: t for t in model.tiers}
        for tier in raw["pricingTiers"]:
            assert tiers[tier["id"]].prices == tier["prices"]
            assert tiers[tier["id"]].is_default == tier["isDefault"]
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "update_model_prices.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_project_model_wins_over_the_built_in_one_and_newest_start_date_wins() -> None:
    pattern = "(?i)^(openai/)?(gpt-4o)$"
    old = project_model(
        {
            "modelName": "gpt-4o",
            "matchPattern": pattern,
            "inputPrice": 1,
            "startDate": "2024-01-01",
        },
        "old",
    )
    new = project_model(
        {
            "modelName": "gpt-4o",
            "matchPattern": pattern,
            "inputPrice": 2,
            "startDate": "2025-01-01",
        },
        "new",
    )
    undated = project_model({"modelName": "gpt-4o", "matchPattern": pattern, "inputPrice": 3}, "u")
    assert registry(old, undated, new).match("p", "gpt-4o").id == "new"  # type: ignore[union-attr]
    assert registry(undated).match("p", "openai/gpt-4o").id == "u"  # type: ignore[union-attr]
    # names the project model does not match still fall through to the built-ins
    found = registry(undated).match("p", "gpt-4o-mini")
    assert found is not None and found.project_id is None


def test_registry_forgets_a_project_on_invalidate() -> None:
    defined: list[ModelDefinition] = []
    reg = ModelRegistry(builtin_models(), lambda _p: list(defined))
    assert reg.match("p", "house-model") is None
    defined.append(
        project_model(
            {"modelName": "house-model", "matchPattern": "^house-model$", "inputPrice": 1}
        )
    )
    assert reg.match("p", "house-model") is None  # cached
    reg.invalidate("p")
    assert reg.match("p", "house-model") is not None


# --------------------------------------------------------------------------------------------
# Pricing.


def price(model_name: str, **values: Any) -> Any:
    model = registry().match("p", model_name)
    values.setdefault("model", model_name)
    return price_observation(values, model)


def test_each_usage_key_is_priced_on_its_own() -> None:
    priced = price(
        "gpt-4o", usage_details={"input": 1000, "output": 200, "input_cached_tokens": 400}
    )
    assert priced.cost == pytest.approx(
        {
            "input": 1000 * 2.5e-6,
            "output": 200 * 1e-5,
            "input_cached_tokens": 400 * 1.25e-6,
            "total": 1000 * 2.5e-6 + 200 * 1e-5 + 400 * 1.25e-6,
        }
    )
    assert priced.usage["total"] == 1600
    assert priced.tier is not None and priced.tier.name == "Standard"


def test_costs_are_exact_decimals() -> None:
    priced = price("gpt-4o", usage_details={"input": 3, "output": 7})
    assert priced.cost["input"] == 7.5e-06 and priced.cost["output"] == 7e-05
    assert priced.cost["total"] == 7.75e-05  # not 7.750000000000001e-05


@pytest.mark.parametrize(
    ("usage", "tier", "input_price"),
    [
        ({"input": 200_000, "output": 10}, "Standard", 1.25e-6),
        ({"input": 200_001, "output": 10}, "Large Context", 2.5e-6),
        ({"input": 150_000, "input_cached_tokens": 60_000, "output": 10}, "Large Context", 2.5e-6),
        ({"output": 300_000}, "Standard", 1.25e-6),
    ],
)
def test_usage_threshold_selects_the_tier(
    usage: dict[str, int], tier: str, input_price: float
) -> None:
    priced = price("gemini-2.5-pro", usage_details=usage)
    assert priced.tier is not None and priced.tier.name == tier
    if "input" in usage:
        assert priced.cost["input"] == pytest.approx(usage["input"] * input_price)


@pytest.mark.parametrize(
    ("params", "tier"),
    [
        (None, "Standard"),
        ({"temperature": 0}, "Standard"),
        ({"service_tier": "priority"}, "Fast mode"),
        ({"service_tier": "fast"}, "Fast mode"),
        ({"service_tier": "flex"}, "Standard"),
    ],
)
def test_model_parameter_selects_the_tier(params: Any, tier: str) -> None:
    priced = price("gpt-4o", usage_details={"input": 10, "output": 10}, model_parameters=params)
    assert priced.tier is not None and priced.tier.name == tier


def test_tiers_are_tried_in_priority_order_with_all_conditions() -> None:
    flex_large = price(
        "gpt-5.4",
        usage_details={"input": 300_000, "output": 1},
        model_parameters={"service_tier": "flex"},
    )
    flex_small = price(
        "gpt-5.4",
        usage_details={"input": 10, "output": 1},
        model_parameters={"service_tier": "flex"},
    )
    large = price("gpt-5.4", usage_details={"input": 300_000, "output": 1})
    assert flex_large.tier.name == "Flex · Large context (>272K)"  # type: ignore[union-attr]
    assert flex_small.tier.name == "Flex"  # type: ignore[union-attr]
    assert large.tier.name == "Large Context (>272K)"  # type: ignore[union-attr]


def test_usage_conditions_answer_the_same_when_they_remember_their_keys() -> None:
    model = project_model(
        {
            "modelName": "tiered",
            "matchPattern": "(?i)^tiered$",
            "pricingTiers": [
                {**GOOD_TIERS[0], "prices": {"input": 1e-6, "input_cached": 1e-7}},
                {
                    **GOOD_TIERS[1],
                    "conditions": [
                        {
                            "usageDetailPattern": "^input",
                            "operator": "gt",
                            "value": 1000,
                            "caseSensitive": True,
                        }
                    ],
                    "prices": {"input": 2e-6, "input_cached": 2e-7},
                },
            ],
        }
    )
    (condition,) = model.tiers[1].conditions
    cases = [
        ({"input": 600, "input_cached": 600, "output": 5000}, "Large"),  # 1,200 on the input side
        ({"input": 600, "output": 5000}, "Standard"),
        ({"input_cached": 1001}, "Large"),
        ({"output": 1001, "INPUT": 5000}, "Standard"),  # a case-sensitive pattern
    ]
    for _ in range(2):  # the second round answers from what the condition remembers
        for usage, tier in cases:
            priced = price_observation({"model": "tiered", "usage_details": usage}, model)
            assert priced.tier is not None and priced.tier.name == tier, usage
    # The keys the condition remembers are clients' own: bounded, and still right past the bound.
    for i in range(3000):
        assert condition.holds({f"input_{i}": 1001}) and not condition.holds({f"x_{i}": 1001})
    assert len(condition.found) <= 1024


def test_fractional_usage_is_priced_through_its_shortest_text() -> None:
    priced = price("gpt-4o", usage_details={"input": 0.1, "output": 3})
    assert priced.cost["input"] == 2.5e-7  # Decimal("0.1") x Decimal("2.5E-6"), exactly
    assert priced.cost["output"] == 3e-5
    assert priced.cost["total"] == 3.025e-5
    (tier,) = [t for t in registry().match("p", "gpt-4o").tiers if t.name == "Standard"]
    assert {k: float(v) for k, v in tier.decimal_prices.items()} == tier.prices


def test_provided_cost_wins_over_prices() -> None:
    priced = price(
        "gpt-4o", usage_details={"input": 1000, "output": 1000}, cost_details={"input": 0.5}
    )
    assert priced.cost == {"input": 0.5, "total": 0.5}
    assert priced.tier is None and priced.model_id is not None


def test_unknown_model_keeps_provided_figures_only() -> None:
    priced = price("llama-3-70b", usage_details={"input": 5, "output": 5})
    assert priced.cost == {} and priced.model_id is None and priced.usage["total"] == 10


def test_total_price_prices_the_total() -> None:
    model = project_model({"modelName": "flat", "matchPattern": "^flat$", "totalPrice": 0.001})
    priced = price_observation({"model": "flat", "usage_details": {"input": 3, "output": 4}}, model)
    assert priced.cost == {"total": pytest.approx(0.007)}


# --------------------------------------------------------------------------------------------
# Token counting when usage is missing.


def test_known_token_counts_offline() -> None:
    # Published examples: cl100k "tiktoken is great!" = 6 tokens, o200k "hello world" = 2.
    assert (
        count_tokens("openai", {"tokenizerModel": "gpt-4"}, "tiktoken is great!", prompt=False) == 6
    )
    assert count_tokens("openai", {"tokenizerModel": "gpt-4o"}, "hello world", prompt=False) == 2
    assert encoding_name("gpt-4o-mini") == "o200k_base"
    assert encoding_name("gpt-3.5-turbo-0613") == "cl100k_base"
    assert encoding_name("text-davinci-003") == "p50k_base"
    assert encoding_name("mystery-model") is None


def test_chat_messages_are_counted_with_per_message_overheads() -> None:
    config = {"tokenizerModel": "gpt-4o", "tokensPerMessage": 3, "tokensPerName": 1}
    messages = [
        {"role": "system", "content": "hello world"},
        {"role": "user", "content": "hello world", "name": "bob"},
    ]
    one = count_tokens("openai", config, "hello world", prompt=False)
    role = count_tokens("openai", config, "system", prompt=False)
    user = count_tokens("openai", config, "user", prompt=False)
    bob = count_tokens("openai", config, "bob", prompt=False)
    expected = 3 + (3 + role + one) + (3 + user + one + bob + 1)  # type: ignore[operator]
    assert count_tokens("openai", config, messages, prompt=True) == expected


def test_missing_usage_is_counted_with_the_model_tokenizer() -> None:
    priced = price(
        "gpt-4o", input="hello world", output={"role": "assistant", "content": "hello world"}
    )
    assert priced.usage == {"input": 2, "output": 2, "total": 4}
    assert priced.cost["total"] == pytest.approx(2 * 2.5e-6 + 2 * 1e-5)


def test_texts_beyond_the_tokenizer_limit_are_left_uncounted() -> None:
    from tracehouse.pricing.tokens import MAX_TOKENIZED_CHARS

    huge = "word " * (MAX_TOKENIZED_CHARS // 5 + 1)
    priced = price("gpt-4o", input=huge, output="hello world")
    assert priced.usage == {"output": 2, "total": 2}  # the input is not guessed
    chat = [{"role": "user", "content": huge[: MAX_TOKENIZED_CHARS // 2]}] * 3
    assert price("gpt-4o", input=chat).usage == {}


def test_no_counting_for_errors_provided_cost_or_models_without_offline_tokenizer() -> None:
    assert price("gpt-4o", input="hello world", level="ERROR").usage == {}
    assert price("gpt-4o", input="hello world", cost_details={"total": 1.0}).usage == {}
    # claude has no offline tokenizer: left uncounted, never guessed
    assert price("claude-3-haiku-20240307", input="hello world", output="hi").usage == {}
    # a provided usage is used as it is
    assert price("gpt-4o", input="hello world", usage_details={"input": 9}).usage == {
        "input": 9,
        "total": 9,
    }


# --------------------------------------------------------------------------------------------
# Validation of project definitions: every error names the field.

GOOD_TIERS = [
    {
        "name": "Standard",
        "isDefault": True,
        "priority": 0,
        "conditions": [],
        "prices": {"input": 1e-6},
    },
    {
        "name": "Large",
        "isDefault": False,
        "priority": 1,
        "conditions": [{"usageDetailPattern": "input", "operator": "gt", "value": 1000}],
        "prices": {"input": 2e-6},
    },
]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"matchPattern": "(?i)^(gpt-4o$"}, "matchPattern"),
        ({"matchPattern": ""}, "matchPattern"),
        ({"modelName": " "}, "modelName"),
        ({"unit": "PARSECS"}, "unit"),
        ({"inputPrice": -1, "pricingTiers": None}, "inputPrice"),
        ({"pricingTiers": None}, "pricingTiers"),
        ({"inputPrice": 1}, "pricingTiers"),
        ({"pricingTiers": None, "inputPrice": 1, "totalPrice": 1}, "totalPrice"),
        ({"startDate": "yesterday"}, "startDate"),
        ({"tokenizerId": "sentencepiece"}, "tokenizerId"),
        (
            {"pricingTiers": [{**GOOD_TIERS[0], "prices": {"input": -0.1}}]},
            "pricingTiers[0].prices.input",
        ),
        ({"pricingTiers": [{**GOOD_TIERS[0], "prices": {}}]}, "pricingTiers[0].prices"),
        ({"pricingTiers": [GOOD_TIERS[1]]}, "pricingTiers"),
        (
            {"pricingTiers": [GOOD_TIERS[0], {**GOOD_TIERS[1], "priority": 0}]},
            "pricingTiers[1].priority",
        ),
        (
            {"pricingTiers": [GOOD_TIERS[0], {**GOOD_TIERS[1], "name": "Standard"}]},
            "pricingTiers[1].name",
        ),
        (
            {"pricingTiers": [GOOD_TIERS[0], {**GOOD_TIERS[1], "conditions": []}]},
            "pricingTiers[1].conditions",
        ),
        (
            {
                "pricingTiers": [
                    GOOD_TIERS[0],
                    GOOD_TIERS[1],
                    {**GOOD_TIERS[1], "name": "Again", "priority": 2},
                ]
            },
            "pricingTiers[2].conditions",
        ),
        (
            {
                "pricingTiers": [
                    GOOD_TIERS[0],
                    {
                        **GOOD_TIERS[1],
                        "conditions": [{"usageDetailPattern": "(", "operator": "gt", "value": 1}],
                    },
                ]
            },
            "pricingTiers[1].conditions[0].usageDetailPattern",
        ),
        (
            {
                "pricingTiers": [
                    GOOD_TIERS[0],
                    {
                        **GOOD_TIERS[1],
                        "conditions": [
                            {"usageDetailPattern": "x", "operator": "above", "value": 1}
                        ],
                    },
                ]
            },
            "pricingTiers[1].conditions[0].operator",
        ),
        (
            {
                "pricingTiers": [
                    GOOD_TIERS[0],
                    {
                        **GOOD_TIERS[1],
                        "conditions": [{"source": "headers", "key": "k", "values": ["v"]}],
                    },
                ]
            },
            "pricingTiers[1].conditions[0].source",
        ),
        ({"pricingTiers": [{**GOOD_TIERS[0], "priority": 3}]}, "pricingTiers[0]"),
    ],
)
def test_invalid_definitions_are_refused_naming_the_field(
    patch: dict[str, Any], field: str
) -> None:
    body = {"modelName": "m", "matchPattern": "^m$", "pricingTiers": GOOD_TIERS, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidInput) as info:
        project_model(body)
    assert info.value.field == field, info.value.message


def test_flat_prices_become_one_default_tier() -> None:
    model = project_model(
        {"modelName": "m", "matchPattern": "^m$", "inputPrice": 1e-6, "outputPrice": 2e-6}
    )
    assert len(model.tiers) == 1 and model.default_tier.name == "Standard"
    assert model.default_tier.prices == {"input": 1e-6, "output": 2e-6}
