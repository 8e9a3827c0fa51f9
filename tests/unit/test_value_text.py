"""Text forms of values: attribute values as Langfuse (JavaScript) writes them, merge-key times."""

from __future__ import annotations

import json
import random
import struct
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
        (1e-07, "1e-07"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
        (["grüße", "日本"], '["grüße","日本"]'),  # non-ASCII kept, compact
        ([1.0, 0.5, [2.0]], "[1,0.5,[2]]"),
        ({"a": 1.0, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
    ],
)
def test_attribute_values_read_as_javascript_writes_them(value: object, text: str) -> None:
    assert to_text(value) == text


def test_fractional_doubles_read_as_the_standard_library_writes_them() -> None:
    """Floats written by ``repr`` (the fast path) give the very text ``json.dumps`` gives."""
    rng = random.Random(7)
    values = [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    values += [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(2000)]  # any bit pattern
    values += [5e-324, 1.7976931348623157e308, 0.1 + 0.2, 1e16 + 0.5, 123456789.123]
    for value in values:
        if value.is_integer() and abs(value) < 1e21:
            continue  # written without a fraction, as above
        assert to_text(value) == json.dumps(value), value
        assert to_text([value, {"k": value}]) == json.dumps(
            [value, {"k": value}], ensure_ascii=False, separators=(",", ":")
        )


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
