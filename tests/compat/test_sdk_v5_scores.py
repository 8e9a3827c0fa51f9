"""Score configs and configured scores through the newest Langfuse Python SDK (5.x), unchanged,
against a real `tracehouse serve` (the compat harness's server subprocess).

The SDK client lives in this process, built from its public constructor arguments only (a
private OpenTelemetry ``TracerProvider``, nothing global touched; nothing of the SDK patched).
Configs are managed with ``langfuse.api.score_configs``; scores are sent with
``Langfuse.create_score(..., config_id=...)`` (the SDK posts them as a list to
``/api/public/scores``) and read back with ``langfuse.api.scores.get_many`` (v3) and through the
HTTP API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import ConfigCategory, NotFoundError

from tests.compat.conftest import Server, sdk_client

pytestmark = pytest.mark.compat

RUN = uuid.uuid4().hex[:10]


class Sent:
    """Status codes of the score posts the SDK sent, in order."""

    def __init__(self) -> None:
        self.score_posts: list[int] = []

    def hook(self, response: httpx.Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.path == "/api/public/scores":
            response.read()
            self.score_posts.append(response.status_code)


@pytest.fixture(scope="module")
def sent() -> Sent:
    return Sent()


@pytest.fixture(scope="module")
def lf(server: Server, sent: Sent) -> Iterator[Langfuse]:
    with sdk_client(server, "sdk5-scores", {"response": [sent.hook]}) as client:
        yield client


def _name(suffix: str) -> str:
    return f"{suffix}-{RUN}"


def _scores_of(lf: Langfuse, trace_id: str, expected: int) -> list[Any]:
    """The trace's scores via the SDK's v3 client, once ``expected`` of them are stored."""
    deadline = time.monotonic() + 20
    while True:
        data = lf.api.scores.get_many(trace_id=trace_id, fields="details").data
        if len(data) >= expected or time.monotonic() > deadline:
            return list(data)
        time.sleep(0.2)


def test_score_configs_create_get_update(lf: Langfuse, server: Server) -> None:
    numeric = lf.api.score_configs.create(
        name=_name("accuracy"), data_type="NUMERIC", min_value=0, max_value=1, description="0..1"
    )
    assert (numeric.data_type, numeric.min_value, numeric.max_value) == ("NUMERIC", 0, 1)
    assert numeric.is_archived is False
    categorical = lf.api.score_configs.create(
        name=_name("tone"),
        data_type="CATEGORICAL",
        categories=[ConfigCategory(label="rude", value=0), ConfigCategory(label="kind", value=1)],
    )
    assert [(c.label, c.value) for c in categorical.categories or []] == [("rude", 0), ("kind", 1)]
    boolean = lf.api.score_configs.create(name=_name("thumbs"), data_type="BOOLEAN")
    assert [(c.label, c.value) for c in boolean.categories or []] == [("True", 1), ("False", 0)]

    got = lf.api.score_configs.get_by_id(numeric.id)
    assert (got.id, got.name, got.description) == (numeric.id, numeric.name, "0..1")
    listed = lf.api.score_configs.get(limit=100)
    assert {numeric.id, categorical.id, boolean.id} <= {c.id for c in listed.data}
    assert listed.meta.total_items >= 3

    updated = lf.api.score_configs.update(numeric.id, max_value=0.5, is_archived=True)
    assert (updated.max_value, updated.is_archived) == (0.5, True)
    assert lf.api.score_configs.get_by_id(numeric.id).is_archived is True
    with pytest.raises(NotFoundError):
        lf.api.score_configs.get_by_id("no-such-config")
    # The same config through the HTTP API (contract-checked).
    assert server.get(f"/api/public/score-configs/{numeric.id}").json()["maxValue"] == 0.5


def test_create_score_with_config_id_reads_back_typed(
    lf: Langfuse, server: Server, sent: Sent
) -> None:
    tone = lf.api.score_configs.create(
        name=_name("tone2"),
        data_type="CATEGORICAL",
        categories=[ConfigCategory(label="rude", value=0), ConfigCategory(label="kind", value=2)],
    )
    thumbs = lf.api.score_configs.create(name=_name("thumbs2"), data_type="BOOLEAN")
    accuracy = lf.api.score_configs.create(
        name=_name("accuracy2"), data_type="NUMERIC", min_value=0, max_value=1
    )
    trace_id = lf.create_trace_id()
    posts_before = len(sent.score_posts)
    lf.create_score(trace_id=trace_id, name=tone.name, value="kind", config_id=tone.id)
    lf.create_score(trace_id=trace_id, name=thumbs.name, value=1, config_id=thumbs.id)
    lf.create_score(
        trace_id=trace_id, name=accuracy.name, value=0.75, config_id=accuracy.id, comment="ok"
    )
    lf.flush()

    scores = {s.name: s for s in _scores_of(lf, trace_id, 3)}
    assert set(scores) == {tone.name, thumbs.name, accuracy.name}
    assert (scores[tone.name].data_type, scores[tone.name].value) == ("CATEGORICAL", "kind")
    assert (scores[thumbs.name].data_type, scores[thumbs.name].value) == ("BOOLEAN", True)
    assert (scores[accuracy.name].data_type, scores[accuracy.name].value) == ("NUMERIC", 0.75)
    assert {s.config_id for s in scores.values()} == {tone.id, thumbs.id, accuracy.id}
    assert all(code == 202 for code in sent.score_posts[posts_before:]), sent.score_posts

    # v2 (HTTP API) shows the numeric value of the category and the boolean's string value.
    v2 = server.get("/api/public/v2/scores", params={"traceId": trace_id}).json()["data"]
    by_name = {s["name"]: s for s in v2}
    assert (by_name[tone.name]["value"], by_name[tone.name]["stringValue"]) == (2, "kind")
    assert by_name[thumbs.name]["stringValue"] == "True"
    # Filter by config through the SDK's v3 client.
    only_tone = lf.api.scores.get_many(config_id=tone.id).data
    assert [s.name for s in only_tone] == [tone.name]


def test_create_score_that_misfits_its_config_is_rejected(
    lf: Langfuse, server: Server, sent: Sent
) -> None:
    accuracy = lf.api.score_configs.create(
        name=_name("accuracy3"), data_type="NUMERIC", min_value=0, max_value=1
    )
    trace_id = lf.create_trace_id()
    posts_before = len(sent.score_posts)
    lf.create_score(trace_id=trace_id, name=accuracy.name, value=0.5, config_id=accuracy.id)
    lf.flush()
    lf.create_score(trace_id=trace_id, name=accuracy.name, value=7, config_id=accuracy.id)
    lf.flush()
    assert len(_scores_of(lf, trace_id, 1)) == 1
    # The out-of-range score was refused (207 for the list it came in), the valid one kept.
    codes = sent.score_posts[posts_before:]
    assert codes and codes[0] == 202 and 207 in codes, codes
    time.sleep(0.5)
    assert [s.value for s in lf.api.scores.get_many(trace_id=trace_id).data] == [0.5]
