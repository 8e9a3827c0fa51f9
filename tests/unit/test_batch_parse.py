"""Parsing of ``POST /api/public/ingestion`` bodies into internal events."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tracehouse.domain.events import FIELDS_BY_KIND, Event
from tracehouse.errors import InvalidInput
from tracehouse.ingest.batch import (
    EventError,
    ParsedBatch,
    normalize_environment,
    parse_batch,
    parse_envelope,
    parse_event,
)

TS = "2024-05-01T12:00:00.000Z"
TS_DT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def envelope(event_type: str, body: Any, *, id: Any = "ev-1", timestamp: Any = TS) -> dict:
    return {"id": id, "type": event_type, "timestamp": timestamp, "body": body}


def parse(event_type: str, body: Any, **kw: Any) -> Event:
    event = parse_event(envelope(event_type, body, **kw))
    assert event is not None
    assert set(event.fields) <= FIELDS_BY_KIND[event.kind]
    return event


def rejects(event_type: str, body: Any, field: str, **kw: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_event(envelope(event_type, body, **kw))
    assert info.value.field == field, info.value.message
    assert info.value.message.startswith(field + ": ")
    return info.value.message


# ---------------------------------------------------------------------------------- envelope


def test_envelope_returns_the_batch_array() -> None:
    assert parse_envelope({"batch": [1, 2], "metadata": {"sdk": "x"}}) == [1, 2]
    assert parse_envelope({"batch": []}) == []


@pytest.mark.parametrize("payload", [None, [], "x", 3, {}, {"batch": None}, {"batch": {}}])
def test_invalid_envelope_raises_naming_batch(payload: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_envelope(payload)
    assert info.value.field == "batch"
    with pytest.raises(InvalidInput):
        parse_batch(payload)


def test_empty_batch_gives_empty_result() -> None:
    assert parse_batch({"batch": []}) == ParsedBatch([], [], [])


# ---------------------------------------------------------------------------------- event envelope


@pytest.mark.parametrize("bad_id", ["", "x" * 801, "a\rb", 5, ["a"]])
def test_envelope_id_must_be_a_1_to_800_char_string_without_cr(bad_id: Any) -> None:
    rejects("trace-create", {}, "id", id=bad_id)


def test_envelope_id_of_800_chars_is_accepted() -> None:
    assert parse("trace-create", {}, id="x" * 800).event_id == "x" * 800


def test_missing_envelope_id_is_rejected() -> None:
    raw = envelope("trace-create", {})
    del raw["id"]
    with pytest.raises(InvalidInput, match="^id: required"):
        parse_event(raw)


def test_unknown_event_type_is_rejected_naming_type() -> None:
    assert "unknown event type" in rejects("trace-update", {}, "type")
    rejects("Trace-Create", {}, "type")
    rejects(None, {}, "type")  # type: ignore[arg-type]
    rejects(7, {}, "type")  # type: ignore[arg-type]


def test_dataset_run_item_create_is_internal_only() -> None:
    assert "only allowed for internal usage" in rejects("dataset-run-item-create", {}, "type")


@pytest.mark.parametrize(
    "stamp",
    [
        None,
        "2024-05-01T12:00:00",
        "2024-05-01",
        "yesterday",
        1714564800,
        "",
        "2024-05-01T12:00:00xZ",
        "2024-05-01x12:00:00Z",
        "2024-05-01T12:00:00\x00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:00:00+25:00",
        "2024-02-30T12:00:00Z",
        "２０２４-05-01T12:00:00Z",
    ],
)
def test_timestamp_is_required_with_timezone(stamp: Any) -> None:
    rejects("trace-create", {}, "timestamp", timestamp=stamp)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-05-01T12:00:00Z", TS_DT),
        ("2024-05-01T12:00:00.123456789Z", TS_DT + timedelta(microseconds=123456)),
        ("2024-05-01T14:00:00+02:00", TS_DT),
        ("2024-05-01T07:30:00-04:30", TS_DT),
        ("2024-05-01 12:00:00Z", TS_DT),
        ("2024-05-01T12:00Z", TS_DT),
        ("2024-05-01T13:00:00+0100", TS_DT),
        ("2024-05-01T12:00:00.5+00:00", TS_DT + timedelta(milliseconds=500)),
    ],
)
def test_timestamps_are_converted_to_aware_utc(stamp: str, expected: datetime) -> None:
    event = parse("trace-create", {}, timestamp=stamp)
    assert event.timestamp == expected
    assert event.timestamp.utcoffset() == timedelta(0)
    assert event.timestamp.tzinfo is UTC


def test_timestamp_that_overflows_when_moved_to_utc_is_rejected() -> None:
    rejects("trace-create", {}, "timestamp", timestamp="0001-01-01T00:00:00+01:00")


@pytest.mark.parametrize("body", [None, [], "x", 1, True])
def test_body_must_be_an_object(body: Any) -> None:
    rejects("span-create", body, "body")


# ---------------------------------------------------------------------------------- traces


def test_trace_create_maps_every_field() -> None:
    body = {
        "id": "t1",
        "timestamp": "2024-05-01T11:00:00+00:00",
        "name": "chat",
        "userId": "u1",
        "sessionId": "s1",
        "release": "r1",
        "version": "v1",
        "environment": "Production",
        "public": True,
        "tags": ["a", "b"],
        "input": {"q": 1},
        "output": "answer",
        "metadata": {"k": "v"},
        "externalId": "dropped",
        "somethingElse": 1,
    }
    event = parse("trace-create", body)
    assert (event.kind, event.entity_id, event.event_id, event.is_create) == (
        "trace",
        "t1",
        "ev-1",
        True,
    )
    assert event.timestamp == TS_DT
    assert event.fields == {
        "timestamp": TS_DT - timedelta(hours=1),
        "name": "chat",
        "user_id": "u1",
        "session_id": "s1",
        "release": "r1",
        "version": "v1",
        "environment": "production",
        "public": True,
        "tags": ["a", "b"],
        "input": {"q": 1},
        "output": "answer",
        "metadata": {"k": "v"},
    }


def test_trace_create_only_carries_sent_keys_plus_defaults() -> None:
    event = parse("trace-create", {"id": "t1"})
    assert event.fields == {"timestamp": TS_DT, "environment": "default"}


def test_trace_explicit_nulls_are_kept_as_none_but_null_metadata_is_dropped() -> None:
    body = {"id": "t1", "name": None, "userId": None, "tags": None, "input": None, "metadata": None}
    fields = parse("trace-create", body).fields
    assert fields["name"] is None and fields["user_id"] is None and fields["tags"] is None
    assert "input" in fields and fields["input"] is None
    assert "metadata" not in fields


def test_trace_null_timestamp_falls_back_to_envelope_timestamp() -> None:
    assert parse("trace-create", {"id": "t", "timestamp": None}).fields["timestamp"] == TS_DT


def test_trace_without_id_gets_a_deterministic_id_from_the_envelope_id() -> None:
    first = parse("trace-create", {"name": "x"}, id="env-42")
    again = parse("trace-create", {"name": "x", "id": None}, id="env-42")
    other = parse("trace-create", {"name": "x"}, id="env-43")
    expected = str(uuid.uuid5(uuid.NAMESPACE_URL, "tracehouse:trace:env-42"))
    assert first.entity_id == again.entity_id == expected
    assert other.entity_id != expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": ""}, "body.id"),
        ({"id": "x" * 801}, "body.id"),
        ({"id": "a\rb"}, "body.id"),
        ({"id": 12}, "body.id"),
        ({"name": "n" * 1001}, "body.name"),
        ({"name": 5}, "body.name"),
        ({"userId": 5}, "body.userId"),
        ({"sessionId": {"a": 1}}, "body.sessionId"),
        ({"release": 1.5}, "body.release"),
        ({"version": True}, "body.version"),
        ({"public": "true"}, "body.public"),
        ({"public": 1}, "body.public"),
        ({"tags": "a"}, "body.tags"),
        ({"tags": ["a", 1]}, "body.tags"),
        ({"timestamp": "2024-05-01T12:00:00"}, "body.timestamp"),
        ({"timestamp": 17}, "body.timestamp"),
    ],
)
def test_trace_body_validation_names_the_field(body: dict, field: str) -> None:
    rejects("trace-create", body, field)


def test_trace_name_of_1000_chars_is_accepted() -> None:
    assert parse("trace-create", {"name": "n" * 1000}).fields["name"] == "n" * 1000


def test_environment_is_normalised_never_rejected() -> None:
    assert parse("trace-create", {"environment": "Langfuse-Prod"}).fields["environment"] == "prod"
    assert parse("trace-create", {"environment": 42}).fields["environment"] == "default"
    assert parse("trace-create", {"environment": None}).fields["environment"] == "default"


# ---------------------------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("production", "production"),
        ("Staging", "staging"),
        ("Langfuse-Prod", "prod"),
        ("langfuse_dev", "dev"),
        ("langfuseqa", "qa"),
        ("LANGFUSE-langfuse_Langfuse-test", "test"),
        ("langfuse", "default"),
        ("langfuse-", "default"),
        ("langfuse--x", "-x"),
        ("my-langfuse", "my-langfuse"),
        ("dev_1-a", "dev_1-a"),
        ("x" * 50, "x" * 40),
        ("prod env", "default"),
        ("prød", "default"),
        ("", "default"),
        (None, "default"),
        (3, "default"),
        (["prod"], "default"),
    ],
)
def test_normalize_environment(raw: Any, expected: str) -> None:
    assert normalize_environment(raw) == expected


def test_normalize_environment_is_linear_on_long_reserved_prefixes() -> None:
    assert normalize_environment("langfuse-" * 200_000 + "ok") == "ok"


# ---------------------------------------------------------------------------------- observations


OBSERVATION_EVENT_TYPES = [
    ("span-create", "SPAN", True),
    ("span-update", "SPAN", False),
    ("generation-create", "GENERATION", True),
    ("generation-update", "GENERATION", False),
    ("event-create", "EVENT", True),
    ("agent-create", "AGENT", True),
    ("tool-create", "TOOL", True),
    ("chain-create", "CHAIN", True),
    ("retriever-create", "RETRIEVER", True),
    ("evaluator-create", "EVALUATOR", True),
    ("embedding-create", "EMBEDDING", True),
    ("guardrail-create", "GUARDRAIL", True),
]


@pytest.mark.parametrize(("event_type", "obs_type", "is_create"), OBSERVATION_EVENT_TYPES)
def test_observation_event_types_set_kind_type_and_create_flag(
    event_type: str, obs_type: str, is_create: bool
) -> None:
    event = parse(event_type, {"id": "o1", "traceId": "t1", "type": "SPAN"})
    assert (event.kind, event.entity_id, event.is_create) == ("observation", "o1", is_create)
    assert event.fields["type"] == obs_type
    assert event.fields["trace_id"] == "t1"


@pytest.mark.parametrize(("event_type", "obs_type", "is_create"), OBSERVATION_EVENT_TYPES)
def test_observation_body_requires_id(event_type: str, obs_type: str, is_create: bool) -> None:
    assert rejects(event_type, {"traceId": "t1"}, "body.id") == "body.id: required"
    rejects(event_type, {"id": None}, "body.id")
    rejects(event_type, {"id": ""}, "body.id")


def test_create_defaults_start_time_to_envelope_timestamp_and_environment_to_default() -> None:
    fields = parse("span-create", {"id": "o1"}).fields
    assert fields == {"type": "SPAN", "start_time": TS_DT, "environment": "default"}
    fields = parse("span-create", {"id": "o1", "startTime": None}).fields
    assert fields["start_time"] == TS_DT


def test_update_carries_start_time_and_environment_only_if_sent() -> None:
    assert parse("span-update", {"id": "o1"}).fields == {"type": "SPAN"}
    fields = parse(
        "span-update",
        {"id": "o1", "startTime": "2024-05-01T10:00:00Z", "environment": "langfuse-stg"},
    ).fields
    assert fields == {
        "type": "SPAN",
        "start_time": TS_DT - timedelta(hours=2),
        "environment": "stg",
    }


def test_generation_create_maps_every_field() -> None:
    body = {
        "id": "g1",
        "traceId": "t1",
        "name": "llm",
        "startTime": "2024-05-01T11:59:00Z",
        "endTime": "2024-05-01T12:00:01Z",
        "completionStartTime": "2024-05-01T11:59:30Z",
        "model": "gpt-4o",
        "modelParameters": {
            "temperature": 0.2,
            "max_tokens": 100,
            "stream": False,
            "stop": ["\n"],
            "extra": {"a": "b"},
            "none": None,
            "mode": "fast",
        },
        "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "hello"},
        "metadata": {"k": 1},
        "level": "WARNING",
        "statusMessage": "slow",
        "parentObservationId": "p1",
        "version": "2",
        "environment": "prod",
        "promptName": "greet",
        "promptVersion": 3,
        "usage": {"input": 10, "output": 5, "unit": "TOKENS"},
        "unknownKey": "dropped",
        "type": "SPAN",
    }
    event = parse("generation-create", body)
    assert event.fields == {
        "type": "GENERATION",
        "trace_id": "t1",
        "name": "llm",
        "start_time": TS_DT - timedelta(minutes=1),
        "end_time": TS_DT + timedelta(seconds=1),
        "completion_start_time": TS_DT - timedelta(seconds=30),
        "model": "gpt-4o",
        "model_parameters": body["modelParameters"],
        "input": body["input"],
        "output": body["output"],
        "metadata": {"k": 1},
        "level": "WARNING",
        "status_message": "slow",
        "parent_observation_id": "p1",
        "version": "2",
        "environment": "prod",
        "prompt_name": "greet",
        "prompt_version": 3,
        "usage_details": {"input": 10, "output": 5, "total": 15},
    }


def test_event_create_has_no_end_time_and_no_generation_fields() -> None:
    body = {
        "id": "e1",
        "endTime": "2024-05-01T12:00:01Z",
        "model": "gpt-4o",
        "usage": {"input": 1},
        "promptName": "p",
    }
    fields = parse("event-create", body).fields
    assert fields == {"type": "EVENT", "start_time": TS_DT, "environment": "default"}


def test_span_drops_generation_only_fields() -> None:
    body = {"id": "s1", "model": "gpt-4o", "usage": {"input": 1}, "endTime": TS}
    fields = parse("span-create", body).fields
    assert "model" not in fields and "usage_details" not in fields
    assert fields["end_time"] == TS_DT


@pytest.mark.parametrize("event_type", ["tool-create", "agent-create", "embedding-create"])
def test_new_observation_types_accept_generation_body(event_type: str) -> None:
    body = {"id": "x", "model": "m", "usageDetails": {"input": 3}, "costDetails": {"input": 0.5}}
    fields = parse(event_type, body).fields
    assert fields["model"] == "m"
    assert fields["usage_details"] == {"input": 3}
    assert fields["cost_details"] == {"input": 0.5}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"traceId": ""}, "body.traceId"),
        ({"traceId": "t" * 801}, "body.traceId"),
        ({"traceId": 1}, "body.traceId"),
        ({"name": 1}, "body.name"),
        ({"startTime": "2024-05-01 12:00"}, "body.startTime"),
        ({"endTime": "nope"}, "body.endTime"),
        ({"completionStartTime": 0}, "body.completionStartTime"),
        ({"level": "warning"}, "body.level"),
        ({"level": "INFO"}, "body.level"),
        ({"level": 1}, "body.level"),
        ({"statusMessage": 500}, "body.statusMessage"),
        ({"parentObservationId": 3}, "body.parentObservationId"),
        ({"version": 2}, "body.version"),
        ({"model": ["gpt"]}, "body.model"),
        ({"modelParameters": "t=1"}, "body.modelParameters"),
        ({"modelParameters": {"x": [1, 2]}}, "body.modelParameters.x"),
        ({"modelParameters": {"x": {"a": 1}}}, "body.modelParameters.x"),
        ({"modelParameters": {"x": [["a"]]}}, "body.modelParameters.x"),
        ({"promptName": "p"}, "body.promptVersion"),
        ({"promptVersion": 1}, "body.promptName"),
        ({"promptName": "p", "promptVersion": "1"}, "body.promptVersion"),
        ({"promptName": "p", "promptVersion": 1.5}, "body.promptVersion"),
        ({"promptName": "p", "promptVersion": True}, "body.promptVersion"),
        ({"promptName": 1, "promptVersion": 1}, "body.promptName"),
    ],
)
def test_generation_body_validation_names_the_field(body: dict, field: str) -> None:
    rejects("generation-create", {"id": "g1", **body}, field)


def test_prompt_name_and_version_both_or_neither() -> None:
    fields = parse("generation-update", {"id": "g", "promptName": "p", "promptVersion": 2.0}).fields
    assert fields["prompt_name"] == "p" and fields["prompt_version"] == 2
    assert type(fields["prompt_version"]) is int
    nulls = parse("generation-update", {"id": "g", "promptName": None, "promptVersion": None})
    assert nulls.fields["prompt_name"] is None and nulls.fields["prompt_version"] is None
    assert "prompt_name" not in parse("generation-update", {"id": "g"}).fields


def test_observation_metadata_accepts_any_json_but_drops_top_level_null() -> None:
    for value in ("text", 3, [1, None], {"a": None}, False):
        assert parse("span-create", {"id": "s", "metadata": value}).fields["metadata"] == value
    assert "metadata" not in parse("span-create", {"id": "s", "metadata": None}).fields


def test_observation_explicit_nulls_are_kept_as_none() -> None:
    body = {"id": "g", "name": None, "model": None, "level": None, "endTime": None}
    fields = parse("generation-update", body).fields
    assert fields == {
        "type": "GENERATION",
        "name": None,
        "model": None,
        "level": None,
        "end_time": None,
    }


# ---------------------------------------------------------------------------------- legacy


@pytest.mark.parametrize("obs_type", ["GENERATION", "SPAN", "EVENT"])
def test_legacy_observation_type_comes_from_body(obs_type: str) -> None:
    event = parse("observation-create", {"id": "o", "type": obs_type})
    assert event.fields["type"] == obs_type and event.is_create
    event = parse("observation-update", {"id": "o", "type": obs_type})
    assert event.fields["type"] == obs_type and not event.is_create


@pytest.mark.parametrize("obs_type", [None, "TOOL", "generation", 1])
def test_legacy_observation_type_must_be_generation_span_or_event(obs_type: Any) -> None:
    rejects("observation-create", {"id": "o", "type": obs_type}, "body.type")


def test_legacy_observation_always_has_default_environment_and_may_omit_id() -> None:
    event = parse(
        "observation-create",
        {"type": "GENERATION", "environment": "prod", "promptName": "p", "model": "m"},
        id="env-9",
    )
    assert event.entity_id == str(uuid.uuid5(uuid.NAMESPACE_URL, "tracehouse:observation:env-9"))
    assert event.fields["environment"] == "default"
    assert "prompt_name" not in event.fields  # the legacy body has no prompt link
    assert event.fields["model"] == "m"
    update = parse("observation-update", {"id": "o", "type": "SPAN", "environment": "prod"})
    assert update.fields["environment"] == "default"
    assert "start_time" not in update.fields


def test_legacy_observation_usage_is_normalised() -> None:
    body = {"id": "o", "type": "GENERATION", "usage": {"promptTokens": 3, "completionTokens": 4}}
    fields = parse("observation-create", body).fields
    assert fields["usage_details"] == {"input": 3, "output": 4, "total": 7}


# ---------------------------------------------------------------------------------- usage


def usage_of(body: dict, event_type: str = "generation-create") -> dict[str, Any]:
    fields = parse(event_type, {"id": "g", **body}).fields
    return {k: fields[k] for k in ("usage_details", "cost_details") if k in fields}


def test_langfuse_usage_computes_total_from_input_and_output() -> None:
    assert usage_of({"usage": {"input": 10, "output": 5}}) == {
        "usage_details": {"input": 10, "output": 5, "total": 15}
    }
    assert usage_of({"usage": {"input": 10}}) == {"usage_details": {"input": 10, "total": 10}}
    assert usage_of({"usage": {"output": 4, "total": 0}}) == {
        "usage_details": {"output": 4, "total": 4}
    }


def test_langfuse_usage_keeps_a_sent_total() -> None:
    assert usage_of({"usage": {"input": 10, "output": 5, "total": 20}}) == {
        "usage_details": {"input": 10, "output": 5, "total": 20}
    }


def test_langfuse_usage_costs_become_cost_details() -> None:
    body = {"usage": {"input": 1, "inputCost": 0.1, "outputCost": 0, "totalCost": 0.3}}
    assert usage_of(body)["cost_details"] == {"input": 0.1, "output": 0.0, "total": 0.3}


def test_usage_integral_floats_are_integers() -> None:
    details = usage_of({"usage": {"input": 10.0, "output": 5}})["usage_details"]
    assert details == {"input": 10, "output": 5, "total": 15}
    assert type(details["input"]) is int


def test_empty_or_null_usage_counts_as_absent() -> None:
    assert usage_of({"usage": {}}) == {}
    assert usage_of({"usage": None, "usageDetails": None, "costDetails": None}) == {}
    assert usage_of({"usage": {"unit": "TOKENS"}}) == {}
    assert usage_of({"usageDetails": {}, "costDetails": {}}) == {}


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"input": 1.5}, "body.usage.input"),
        ({"input": "10"}, "body.usage.input"),
        ({"input": True}, "body.usage.input"),
        ({"output": [1]}, "body.usage.output"),
        ({"total": 2**70}, "body.usage.total"),
        ({"input": 1, "unit": "WORDS"}, "body.usage.unit"),
        ({"input": 1, "unit": "tokens"}, "body.usage.unit"),
        ({"input": 1, "unit": 3}, "body.usage.unit"),
        ({"inputCost": "0.1"}, "body.usage.inputCost"),
        ({"totalCost": False}, "body.usage.totalCost"),
        ({"promptTokens": 1.5}, "body.usage.promptTokens"),
        ({"completionTokens": "x"}, "body.usage.completionTokens"),
    ],
)
def test_usage_validation_names_the_field(usage: dict, field: str) -> None:
    rejects("generation-create", {"id": "g", "usage": usage}, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"usage": [1, 2]}, "body.usage"),
        ({"usage": 10}, "body.usage"),
        ({"usageDetails": [1]}, "body.usageDetails"),
        ({"usageDetails": "x"}, "body.usageDetails"),
        ({"costDetails": 0.5}, "body.costDetails"),
        ({"promptTokens": "3"}, "body.promptTokens"),
    ],
)
def test_usage_containers_must_be_objects(body: dict, field: str) -> None:
    rejects("generation-create", {"id": "g", **body}, field)


@pytest.mark.parametrize(
    "unit", ["CHARACTERS", "TOKENS", "SECONDS", "MILLISECONDS", "IMAGES", "REQUESTS"]
)
def test_usage_units_are_accepted_but_not_stored(unit: str) -> None:
    assert usage_of({"usage": {"input": 2, "unit": unit}}) == {
        "usage_details": {"input": 2, "total": 2}
    }


def test_openai_legacy_usage_ignores_other_keys() -> None:
    body: dict[str, Any] = {
        "usage": {"promptTokens": 7, "completionTokens": 3, "totalTokens": 10, "input": 99}
    }
    assert usage_of(body) == {"usage_details": {"input": 7, "output": 3, "total": 10}}
    body = {"usage": {"promptTokens": 7, "unit": "bogus", "inputCost": "bogus"}}
    assert usage_of(body) == {"usage_details": {"input": 7, "total": 7}}


def test_top_level_sdk_v1_token_counts_are_usage() -> None:
    body: dict[str, Any] = {"promptTokens": 5, "completionTokens": 6, "totalTokens": 11}
    assert usage_of(body) == {"usage_details": {"input": 5, "output": 6, "total": 11}}
    # an explicit usage object wins
    body = {"promptTokens": 5, "usage": {"input": 1, "output": 1}}
    assert usage_of(body) == {"usage_details": {"input": 1, "output": 1, "total": 2}}


def test_negative_usage_counts_are_accepted_but_not_kept() -> None:
    assert usage_of({"usage": {"input": -3, "output": 4}}) == {
        "usage_details": {"output": 4, "total": 4}
    }


def test_openai_chat_usage_details_split_cached_and_reasoning_tokens() -> None:
    details = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 30, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 20, "accepted_prediction_tokens": None},
    }
    assert usage_of({"usageDetails": details}) == {
        "usage_details": {
            "input": 70,
            "output": 30,
            "total": 150,
            "input_cached_tokens": 30,
            "input_audio_tokens": 0,
            "output_reasoning_tokens": 20,
        }
    }


def test_openai_chat_usage_details_subtraction_never_goes_below_zero() -> None:
    details = {
        "prompt_tokens": 10,
        "completion_tokens": 0,
        "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 8},
        "completion_tokens_details": None,
    }
    out = usage_of({"usageDetails": details})["usage_details"]
    assert out["input"] == 0 and out["output"] == 0
    assert out["input_cached_tokens"] == 8 and out["input_audio_tokens"] == 8


def test_openai_responses_usage_details_are_split() -> None:
    details = {
        "input_tokens": 200,
        "output_tokens": 80,
        "total_tokens": 280,
        "input_tokens_details": {"cached_tokens": 150},
        "output_tokens_details": {"reasoning_tokens": 64},
    }
    assert usage_of({"usageDetails": details})["usage_details"] == {
        "input": 50,
        "output": 16,
        "total": 280,
        "input_cached_tokens": 150,
        "output_reasoning_tokens": 64,
    }


def test_openai_shape_with_extra_keys_is_a_free_map() -> None:
    details = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 2},
        "extra": 1,
    }
    assert usage_of({"usageDetails": details})["usage_details"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "extra": 1,
    }


def test_free_usage_details_keep_non_negative_integers_and_digit_strings() -> None:
    details = {
        "input": 10,
        "output": "5",
        "input_audio": 2.0,
        "neg": -1,
        "frac": 1.5,
        "word": "ten",
        "signed": "+3",
        "flag": True,
        "nested": {"a": 1},
        "null": None,
    }
    assert usage_of({"usageDetails": details})["usage_details"] == {
        "input": 10,
        "output": 5,
        "input_audio": 2,
    }


def test_usage_details_override_usage_and_suppress_computed_total() -> None:
    body = {"usage": {"input": 10, "output": 5}, "usageDetails": {"input": 8, "input_cached": 2}}
    assert usage_of(body)["usage_details"] == {"input": 8, "output": 5, "input_cached": 2}
    body = {"usage": {"input": 10, "output": 5, "total": 15}, "usageDetails": {"output": 1}}
    assert usage_of(body)["usage_details"] == {"input": 10, "output": 1, "total": 15}


def test_cost_details_keep_non_negative_numbers_and_override_usage_costs() -> None:
    body = {
        "usage": {"inputCost": 1.0, "outputCost": 2.0},
        "costDetails": {"input": 0.5, "total": 3, "neg": -1, "s": "1", "b": True, "n": None},
    }
    cost = usage_of(body)["cost_details"]
    assert cost == {"input": 0.5, "output": 2.0, "total": 3.0}
    assert type(cost["total"]) is float


# ---------------------------------------------------------------------------------- scores


def test_numeric_score_maps_every_field() -> None:
    body = {
        "id": "s1",
        "name": "accuracy",
        "value": 1,
        "traceId": "t1",
        "observationId": "o1",
        "environment": "Prod",
        "comment": "good",
        "metadata": {"k": "v"},
        "source": "EVAL",
        "dataType": "NUMERIC",
        "configId": "c1",
        "queueId": "q1",
        "executionTraceId": "x1",
        "timestamp": "ignored",
    }
    event = parse("score-create", body)
    assert (event.kind, event.entity_id, event.is_create) == ("score", "s1", True)
    assert event.fields == {
        "timestamp": TS_DT,
        "name": "accuracy",
        "value": 1.0,
        "string_value": None,
        "data_type": "NUMERIC",
        "source": "EVAL",
        "trace_id": "t1",
        "observation_id": "o1",
        "environment": "prod",
        "comment": "good",
        "metadata": {"k": "v"},
        "config_id": "c1",
        "queue_id": "q1",
        "execution_trace_id": "x1",
    }
    assert type(event.fields["value"]) is float


def test_score_defaults_source_environment_and_infers_data_type() -> None:
    fields = parse("score-create", {"name": "n", "value": 0.5, "sessionId": "s"}).fields
    assert fields == {
        "timestamp": TS_DT,
        "name": "n",
        "value": 0.5,
        "string_value": None,
        "data_type": "NUMERIC",
        "source": "API",
        "session_id": "s",
        "environment": "default",
    }
    fields = parse("score-create", {"name": "n", "value": "good", "datasetRunId": "r"}).fields
    assert (fields["data_type"], fields["value"], fields["string_value"]) == (
        "CATEGORICAL",
        None,
        "good",
    )
    assert (
        parse("score-create", {"name": "n", "value": 1, "traceId": "t", "source": None}).fields[
            "source"
        ]
        == "API"
    )


def test_score_without_id_gets_a_deterministic_id() -> None:
    body = {"name": "n", "value": 1, "traceId": "t"}
    first = parse("score-create", body, id="e1")
    assert first.entity_id == str(uuid.uuid5(uuid.NAMESPACE_URL, "tracehouse:score:e1"))
    assert parse("score-create", body, id="e1").entity_id == first.entity_id
    assert parse("score-create", body, id="e2").entity_id != first.entity_id


@pytest.mark.parametrize(("value", "string_value"), [(1, "True"), (0, "False"), (1.0, "True")])
def test_boolean_score_gets_true_false_string_value(value: float, string_value: str) -> None:
    body = {"name": "n", "value": value, "traceId": "t", "dataType": "BOOLEAN"}
    fields = parse("score-create", body).fields
    assert fields["value"] == float(value) and fields["string_value"] == string_value


@pytest.mark.parametrize("data_type", ["CATEGORICAL", "TEXT", "CORRECTION"])
def test_string_score_types_store_string_value(data_type: str) -> None:
    body = {"name": "n", "value": "some text", "traceId": "t", "dataType": data_type}
    fields = parse("score-create", body).fields
    assert (fields["value"], fields["string_value"], fields["data_type"]) == (
        None,
        "some text",
        data_type,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 1, "traceId": "t"}, "body.name"),
        ({"name": "", "value": 1, "traceId": "t"}, "body.name"),
        ({"name": 3, "value": 1, "traceId": "t"}, "body.name"),
        ({"name": "n", "traceId": "t"}, "body.value"),
        ({"name": "n", "value": None, "traceId": "t"}, "body.value"),
        ({"name": "n", "value": True, "traceId": "t"}, "body.value"),
        ({"name": "n", "value": [1], "traceId": "t"}, "body.value"),
        ({"name": "n", "value": 1}, "body.traceId"),
        ({"name": "n", "value": 1, "traceId": "t", "sessionId": "s"}, "body.sessionId"),
        ({"name": "n", "value": 1, "sessionId": "s", "datasetRunId": "d"}, "body.datasetRunId"),
        ({"name": "n", "value": 1, "sessionId": "s", "observationId": "o"}, "body.observationId"),
        ({"name": "n", "value": 1, "traceId": ""}, "body.traceId"),
        ({"name": "n", "value": 1, "traceId": 5}, "body.traceId"),
        ({"name": "n", "value": "x", "traceId": "t", "dataType": "NUMERIC"}, "body.value"),
        ({"name": "n", "value": 2, "traceId": "t", "dataType": "BOOLEAN"}, "body.value"),
        ({"name": "n", "value": "1", "traceId": "t", "dataType": "BOOLEAN"}, "body.value"),
        ({"name": "n", "value": 1, "traceId": "t", "dataType": "CATEGORICAL"}, "body.value"),
        ({"name": "n", "value": "", "traceId": "t", "dataType": "TEXT"}, "body.value"),
        ({"name": "n", "value": "x" * 501, "traceId": "t", "dataType": "TEXT"}, "body.value"),
        ({"name": "n", "value": 1, "traceId": "t", "dataType": "TEXT"}, "body.value"),
        (
            {"name": "n", "value": "x", "traceId": "t", "dataType": "CORRECTION", "configId": "c"},
            "body.configId",
        ),
        ({"name": "n", "value": 1, "traceId": "t", "dataType": "numeric"}, "body.dataType"),
        ({"name": "n", "value": 1, "traceId": "t", "source": "USER"}, "body.source"),
        ({"name": "n", "value": 1, "traceId": "t", "comment": 5}, "body.comment"),
        ({"name": "n", "value": 1, "traceId": "t", "configId": 5}, "body.configId"),
        ({"name": "n", "value": 2**1100, "traceId": "t"}, "body.value"),
    ],
)
def test_score_validation_names_the_field(body: dict, field: str) -> None:
    rejects("score-create", body, field)


def test_text_score_of_500_chars_is_accepted() -> None:
    body = {"name": "n", "value": "x" * 500, "traceId": "t", "dataType": "TEXT"}
    assert parse("score-create", body).fields["string_value"] == "x" * 500


# ---------------------------------------------------------------------------------- sdk-log


def test_sdk_log_is_validated_and_produces_no_event() -> None:
    assert parse_event(envelope("sdk-log", {"log": {"msg": "hi"}})) is None
    assert parse_event(envelope("sdk-log", {"log": None})) is None
    with pytest.raises(InvalidInput, match="^body.log: required"):
        parse_event(envelope("sdk-log", {"id": "x"}))


# ---------------------------------------------------------------------------------- batches


def test_batch_with_one_bad_event_keeps_the_good_ones_in_order() -> None:
    payload = {
        "batch": [
            envelope("trace-create", {"id": "t1"}, id="e1"),
            envelope("span-create", {"traceId": "t1"}, id="e2"),  # no body.id
            envelope("sdk-log", {"log": "x"}, id="e3"),
            envelope("generation-create", {"id": "g1", "traceId": "t1"}, id="e4"),
            "not an event",
            {"id": 7, "type": "trace-create"},
            envelope("score-create", {"name": "n", "value": 1, "traceId": "t1"}, id="e5"),
        ],
        "metadata": {"batch_size": 7},
    }
    result = parse_batch(payload)
    assert [e.event_id for e in result.events] == ["e1", "e4", "e5"]
    assert result.successes == ["e1", "e3", "e4", "e5"]
    assert result.errors == [
        EventError("e2", 400, "Invalid request data", "body.id: required"),
        EventError("unknown", 400, "Invalid request data", "event: expected an object"),
        EventError("unknown", 400, "Invalid request data", "id: expected a string"),
    ]


def test_error_id_is_the_envelope_id_even_when_that_id_is_invalid() -> None:
    result = parse_batch({"batch": [envelope("trace-create", {}, id="")]})
    assert result.errors == [EventError("", 400, "Invalid request data", result.errors[0].error)]
    assert result.errors[0].error is not None and result.errors[0].error.startswith("id: ")


def test_unexpected_exception_becomes_a_500_entry_and_spares_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tracehouse.ingest.batch as batch_module

    def boom(*args: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(batch_module._PARSERS, "score", boom)
    payload = {
        "batch": [
            envelope("score-create", {"name": "n", "value": 1, "traceId": "t"}, id="e1"),
            envelope("trace-create", {"id": "t"}, id="e2"),
        ]
    }
    result = parse_batch(payload)
    assert result.errors == [EventError("e1", 500, "Internal Server Error", None)]
    assert result.successes == ["e2"]


def test_usage_unit_error_lists_units_in_a_stable_order() -> None:
    message = rejects("generation-create", {"id": "g", "usage": {"unit": "X"}}, "body.usage.unit")
    assert message.endswith("CHARACTERS, TOKENS, SECONDS, MILLISECONDS, IMAGES, REQUESTS")


def test_every_event_type_is_accepted_in_one_batch() -> None:
    types = ["trace-create", "score-create", "sdk-log", "observation-create", "observation-update"]
    types += [t for t, _, _ in OBSERVATION_EVENT_TYPES]
    bodies = {
        "trace-create": {"id": "t"},
        "score-create": {"name": "n", "value": 1, "traceId": "t"},
        "sdk-log": {"log": {}},
        "observation-create": {"id": "o", "type": "SPAN"},
        "observation-update": {"id": "o", "type": "SPAN"},
    }
    batch = [envelope(t, bodies.get(t, {"id": "o"}), id=f"e{i}") for i, t in enumerate(types)]
    result = parse_batch({"batch": batch})
    assert result.errors == []
    assert len(result.successes) == len(types)
    assert len(result.events) == len(types) - 1


# ---------------------------------------------------------------------------------- robustness

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**80,
    -(2**80),
    1e308,
    "",
    "x",
    "\r",
    "x" * 100_000,
    "2024-05-01T12:00:00Z",
    "9999-12-31T23:59:59-12:00",
    [],
    [None],
    [1, "a", {}],
    {},
    {"a": None},
    {"input": "x"},
    {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "prompt_tokens_details": 5},
    {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
        "input_tokens_details": {"c": "x"},
        "output_tokens_details": [],
    },
]

BODY_KEYS = [
    "id", "traceId", "type", "name", "startTime", "endTime", "completionStartTime", "model",
    "modelParameters", "input", "output", "metadata", "level", "statusMessage",
    "parentObservationId", "version", "environment", "usage", "usageDetails", "costDetails",
    "promptName", "promptVersion", "promptTokens", "completionTokens", "totalTokens", "timestamp",
    "userId", "sessionId", "release", "public", "tags", "value", "observationId", "datasetRunId",
    "comment", "source", "dataType", "configId", "queueId", "executionTraceId", "log",
]  # fmt: skip

ALL_TYPES = [
    "trace-create", "score-create", "sdk-log", "observation-create", "observation-update",
    "dataset-run-item-create", "bogus",
    *[t for t, _, _ in OBSERVATION_EVENT_TYPES],
]  # fmt: skip


def _check_only_invalid_input(raw: Any) -> None:
    try:
        event = parse_event(raw)
    except InvalidInput as exc:
        assert exc.field is not None and exc.message.startswith(exc.field)
        return
    if event is not None:
        assert set(event.fields) <= FIELDS_BY_KIND[event.kind]
        assert event.timestamp.tzinfo is not None


def test_odd_values_in_every_body_field_raise_only_invalid_input() -> None:
    base_bodies: dict[str, dict[str, Any]] = {
        "score-create": {"name": "n", "value": 1, "traceId": "t"},
        "sdk-log": {"log": 1},
        "observation-create": {"id": "o", "type": "GENERATION"},
        "observation-update": {"id": "o", "type": "GENERATION"},
    }
    for event_type, key, value in itertools.product(ALL_TYPES, BODY_KEYS, ODD_VALUES):
        body = dict(base_bodies.get(event_type, {"id": "x"}))
        body[key] = value
        _check_only_invalid_input(envelope(event_type, body))
        if isinstance(value, dict):  # also nested one level, e.g. usage.input = odd value
            for inner in ODD_VALUES[:12]:
                body[key] = {**value, "input": inner, "prompt_tokens": inner, "x": inner}
                _check_only_invalid_input(envelope(event_type, body))


def test_odd_values_in_envelope_fields_raise_only_invalid_input() -> None:
    for key, value in itertools.product(["id", "type", "timestamp", "body"], ODD_VALUES):
        raw = envelope("generation-create", {"id": "g"})
        raw[key] = value
        _check_only_invalid_input(raw)
    for value in ODD_VALUES:
        _check_only_invalid_input(value)
        result = parse_batch({"batch": [value, value]})
        assert len(result.successes) + len(result.errors) == 2
        assert all(e.status == 400 for e in result.errors)


def test_random_json_structures_raise_only_invalid_input() -> None:
    rng = random.Random(1234)

    def random_json(depth: int) -> Any:
        choice = rng.randrange(9 if depth < 3 else 6)
        if choice < 6:
            return rng.choice(ODD_VALUES[:15])
        if choice < 8:
            keys = rng.sample(BODY_KEYS, rng.randrange(6))
            return {k: random_json(depth + 1) for k in keys}
        return [random_json(depth + 1) for _ in range(rng.randrange(3))]

    for _ in range(3000):
        raw = envelope(rng.choice(ALL_TYPES), random_json(0), id=rng.choice(["e", 1, None]))
        if rng.random() < 0.2:
            raw["timestamp"] = rng.choice(ODD_VALUES)
        _check_only_invalid_input(raw)
        result = parse_batch({"batch": [raw]})
        assert len(result.successes) + len(result.errors) == 1
        assert all(e.status == 400 for e in result.errors)


def test_non_utc_offsets_in_body_become_utc() -> None:
    body = {"id": "o", "startTime": "2024-05-01T12:00:00+05:30"}
    start = parse("span-create", body).fields["start_time"]
    assert start == datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert start.tzinfo is UTC
