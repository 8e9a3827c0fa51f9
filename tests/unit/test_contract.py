"""The OpenAPI contract checker (tests/contract.py) on hand-made responses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import contract
from tests.contract import assert_response_matches, is_rfc3339_datetime, load_contract

BASE = "http://x"


def reply(status: int, body: Any = None, *, method: str = "GET", path: str, **kw: Any):
    request = httpx.Request(method, BASE + path)
    if body is None:
        return httpx.Response(status, request=request, **kw)
    return httpx.Response(status, json=body, request=request, **kw)


def trace(**overrides: Any) -> dict[str, Any]:
    item = {
        "id": "7f1c4bb0-4a55-4d36-9c2a-1f4c9f3f3a01",
        "timestamp": "2024-01-01T00:00:00.000Z",
        "name": "chat-turn",
        "input": {"question": "hi"},
        "output": None,
        "sessionId": None,
        "release": None,
        "version": None,
        "userId": "u-1",
        "metadata": None,
        "tags": ["a", "b"],
        "public": False,
        "environment": "default",
        "htmlPath": "/project/p/traces/7f1c4bb0-4a55-4d36-9c2a-1f4c9f3f3a01",
        "latency": 1.25,
        "totalCost": 0,
        "observations": ["o-1"],
        "scores": [],
    }
    item.update(overrides)
    return item


def traces_page(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": list(items),
        "meta": {"page": 1, "limit": 50, "totalItems": len(items), "totalPages": 1},
    }


def failure(response: httpx.Response, **kw: Any) -> str:
    with pytest.raises(AssertionError) as info:
        assert_response_matches(response, **kw)
    return str(info.value)


# --- loading ------------------------------------------------------------------------------


def test_spec_is_found_next_to_the_repo_and_parsed_once() -> None:
    repo = Path(contract.__file__).resolve().parent.parent
    expected = repo.parent / "shared/reference" / contract.SPEC_FILENAME
    assert contract.spec_path() == expected.resolve()
    assert load_contract() is load_contract()


def test_env_var_overrides_spec_location(tmp_path: Path) -> None:
    target = tmp_path / "other.yml"
    environ = {contract.SPEC_ENV_VAR: str(target)}
    assert contract.spec_path(environ) == target.resolve()
    with pytest.raises(FileNotFoundError, match=contract.SPEC_ENV_VAR):
        load_contract(environ)


# --- the basics asked of the checker --------------------------------------------------------


def test_valid_traces_page_passes() -> None:
    assert_response_matches(
        reply(200, traces_page(trace(), trace(id="t2")), path="/api/public/traces")
    )


def test_trace_missing_html_path_fails_and_names_it() -> None:
    item = trace()
    del item["htmlPath"]
    message = failure(reply(200, traces_page(trace(), item), path="/api/public/traces"))
    assert "/data/1: 'htmlPath' is a required property" in message


def test_wrong_type_fails_with_pointer() -> None:
    message = failure(reply(200, traces_page(trace(tags="a,b")), path="/api/public/traces"))
    assert "/data/0/tags: 'a,b' is not of type 'array'" in message


def test_every_error_is_listed() -> None:
    item = trace(public="no", latency="slow")
    del item["id"]
    body = traces_page(item)
    body["meta"]["page"] = "1"
    message = failure(reply(200, body, path="/api/public/traces"))
    for expected in (
        "/data/0: 'id' is a required property",
        "/data/0/public: 'no' is not of type 'boolean'",
        "/data/0/latency: 'slow' is not of type 'number'",
        "/meta/page: '1' is not of type 'integer'",
    ):
        assert expected in message


def test_null_for_non_nullable_field_fails() -> None:
    message = failure(reply(200, traces_page(trace(tags=None)), path="/api/public/traces"))
    assert "/data/0/tags: null is not allowed (not nullable)" in message


def test_undocumented_status_fails() -> None:
    message = failure(reply(418, {"message": "teapot"}, path="/api/public/traces"))
    assert "status 418 is not documented" in message


def test_unknown_path_fails() -> None:
    message = failure(reply(200, {}, path="/api/public/no-such-thing"))
    assert "no path in the OpenAPI spec matches" in message


def test_undocumented_method_fails() -> None:
    message = failure(reply(200, {}, method="PUT", path="/api/public/traces"))
    assert "method not documented" in message


# --- date-time format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00Z", "2024-06-30T23:59:59.123456+02:00"],
)
def test_date_time_accepts_rfc3339(value: str) -> None:
    assert is_rfc3339_datetime(value)
    assert_response_matches(
        reply(200, traces_page(trace(timestamp=value)), path="/api/public/traces")
    )


@pytest.mark.parametrize(
    "value",
    ["not a date", "2024-01-01", "2024-01-01T00:00:00", "2024-02-30T00:00:00Z", "1704067200"],
)
def test_date_time_rejects_non_rfc3339(value: str) -> None:
    assert not is_rfc3339_datetime(value)
    message = failure(reply(200, traces_page(trace(timestamp=value)), path="/api/public/traces"))
    assert f"/data/0/timestamp: '{value}' is not a 'date-time'" in message


# --- operation lookup -----------------------------------------------------------------------


def test_literal_path_preferred_over_template() -> None:
    c = load_contract()
    assert c.find_path("GET", "/api/public/v2/scores") == "/api/public/v2/scores"
    assert c.find_path("GET", "/api/public/v2/scores/abc") == "/api/public/v2/scores/{scoreId}"
    assert c.find_path("GET", "/api/public/traces/abc") == "/api/public/traces/{traceId}"


def test_encoded_slash_stays_in_its_segment() -> None:
    c = load_contract()
    assert c.find_path("GET", "/api/public/v2/prompts/folder%2Fname") == (
        "/api/public/v2/prompts/{promptName}"
    )


def test_path_and_method_overrides() -> None:
    response = httpx.Response(200, json={"status": "OK", "version": "3.0.0"})  # no request
    assert_response_matches(response, path="/api/public/health", method="GET")
    assert_response_matches(response, path="http://host/api/public/health?x=1", method="get")
    with pytest.raises(AssertionError, match="pass method="):
        assert_response_matches(response)
    single = reply(200, trace(observations=[], scores=[]), path="/whatever")
    assert_response_matches(single, path="/api/public/traces/{traceId}")


# --- bodies beyond the happy path ------------------------------------------------------------


def test_error_reply_must_be_json_but_any_json_will_do() -> None:
    path = "/api/public/traces/nope"
    assert_response_matches(
        reply(404, {"message": "Trace not found", "error": "LangfuseNotFoundError"}, path=path)
    )
    message = failure(reply(404, None, path=path, text="Trace not found"))
    assert "content-type 'text/plain; charset=utf-8' not documented" in message
    broken = reply(
        404, None, path=path, content=b"{oops", headers={"content-type": "application/json"}
    )
    assert "body is not valid" in failure(broken)


def test_json_content_type_with_charset_is_accepted() -> None:
    response = reply(
        200,
        None,
        path="/api/public/health",
        content=b'{"status":"OK","version":"3.0.0"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert_response_matches(response)


def test_empty_body_where_json_is_documented_fails() -> None:
    message = failure(reply(200, None, path="/api/public/health"))
    assert "MissingData" in message


def test_ingestion_207_reply() -> None:
    body = {
        "successes": [{"id": "e1", "status": 201}],
        "errors": [{"id": "e2", "status": 400, "message": "bad", "error": {"issues": []}}],
    }
    assert_response_matches(reply(207, body, method="POST", path="/api/public/ingestion"))
    body["successes"][0]["status"] = "201"
    message = failure(reply(207, body, method="POST", path="/api/public/ingestion"))
    assert "/successes/0/status" in message


def score(**overrides: Any) -> dict[str, Any]:
    item = {
        "id": "s1",
        "traceId": "t1",
        "name": "quality",
        "source": "API",
        "timestamp": "2024-01-01T00:00:00.000Z",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "authorUserId": None,
        "comment": None,
        "metadata": None,
        "configId": None,
        "queueId": None,
        "environment": "default",
        "dataType": "NUMERIC",
        "value": 0.9,
    }
    item.update(overrides)
    return item


def test_tagged_one_of_picks_the_intended_branch() -> None:
    path = "/api/public/v2/scores/s1"
    assert_response_matches(reply(200, score(), path=path))
    message = failure(reply(200, score(value="high"), path=path))
    assert "value matches no branch of oneOf" in message
    assert "/value: 'high' is not of type 'number'" in message
    # the other (CATEGORICAL, BOOLEAN ...) branches fail on the tag and are not reported
    assert "is not one of ['CATEGORICAL']" not in message


# --- the spec's quirks ----------------------------------------------------------------------


def test_nullable_ref_accepts_null_and_still_checks_the_object() -> None:
    # `Traces._deprecation` is `$ref: Deprecation` + `nullable: true`.
    assert_response_matches(
        reply(200, {**traces_page(trace()), "_deprecation": None}, path="/api/public/traces")
    )
    message = failure(
        reply(
            200, {**traces_page(trace()), "_deprecation": {"docsUrl": 3}}, path="/api/public/traces"
        )
    )
    assert "/_deprecation: 'message' is a required property" in message
    assert "/_deprecation/docsUrl: 3 is not of type 'string'" in message


def test_untagged_union_accepts_overlapping_branches() -> None:
    # ChatMessageWithPlaceholders = ChatMessage | PlaceholderMessage; a message carrying both
    # shapes' required fields matches both branches, which a strict oneOf would reject.
    prompt = {
        "type": "chat",
        "name": "p",
        "version": 1,
        "config": {},
        "labels": ["production"],
        "tags": [],
        "prompt": [
            {"role": "system", "content": "be brief"},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{q}}", "name": "both"},
        ],
    }
    assert_response_matches(reply(200, prompt, path="/api/public/v2/prompts/p"))
    prompt["prompt"].append({"content": 1})
    message = failure(reply(200, prompt, path="/api/public/v2/prompts/p"))
    assert "/prompt/3: value matches no branch of anyOf" in message


def test_normalise_spec_rewrites() -> None:
    spec = {
        "components": {
            "schemas": {
                "A": {"type": "object", "properties": {"op": {"type": "string", "const": "in"}}},
                "B": {"type": "object", "properties": {"a": {"$ref": "#/A", "nullable": True}}},
                "Untagged": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
                "Tagged": {
                    "oneOf": [
                        {
                            "type": "object",
                            "allOf": [{"properties": {"k": {"type": "string", "enum": [x]}}}],
                            "required": ["k"],
                        }
                        for x in ("one", "two")
                    ]
                },
            }
        }
    }
    original = copy.deepcopy(spec)
    notes = contract.normalise_spec(spec)
    schemas = spec["components"]["schemas"]
    assert schemas["A"]["properties"]["op"] == {"type": "string", "enum": ["in"]}
    assert schemas["B"]["properties"]["a"] == {"anyOf": [{"$ref": "#/A"}, {"enum": [None]}]}
    assert schemas["Untagged"] == {"anyOf": original["components"]["schemas"]["Untagged"]["oneOf"]}
    assert schemas["Tagged"] == original["components"]["schemas"]["Tagged"]
    assert len(notes) == 3


def test_loaded_spec_has_its_quirks_normalised() -> None:
    c = load_contract()
    schemas = c.spec["components"]["schemas"]
    assert "anyOf" in schemas["MapValue"] and "oneOf" not in schemas["MapValue"]
    assert "oneOf" in schemas["Score"]
    assert schemas["PricingTierAttributeCondition"]["properties"]["operator"]["enum"] == ["in"]
