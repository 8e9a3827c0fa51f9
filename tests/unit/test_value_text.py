"""Text forms of values: attribute values as Langfuse (JavaScript) writes them, merge-key times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tracehouse.domain.merge import time_text
from tracehouse.ingest.conventions._span import to_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("as is", "as is"),
        (None, "null"),
        (True, "true"),
        (7, "7"),
        (1.0, "1"),  # JavaScript prints integral doubles without a fraction
        (12.5, "12.5"),
        (-0.25, "-0.25"),
        (1e21, "1e+21"),
        (["grüße", "日本"], '["grüße","日本"]'),  # non-ASCII kept, compact
        ([1.0, 0.5, [2.0]], "[1,0.5,[2]]"),
        ({"a": 1.0, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
    ],
)
def test_attribute_values_read_as_javascript_writes_them(value: object, text: str) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    "ts",
    [
        datetime(2026, 1, 2, 3, 4, 5, 6, UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still six digits
        datetime(2026, 1, 2, 3, 4, 5, 123456),
        datetime(1999, 12, 31, 23, 59, 59, 999999, timezone(timedelta(hours=2))),
        datetime(999, 1, 1, tzinfo=UTC),
    ],
)
def test_merge_key_time_is_the_fixed_width_text_of_the_time_fields(ts: datetime) -> None:
    assert time_text(ts) == ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
