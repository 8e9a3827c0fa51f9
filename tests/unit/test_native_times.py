"""The native time helpers (``domain/_times.pyx``, compiled installs) against the Python code
they stand in for: the same times from nanoseconds, the same texts of every kind of datetime."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tracehouse.domain import merge
from tracehouse.ingest import otlp
from tracehouse.store import writes

try:
    from tracehouse.domain import _times
except ImportError:
    _times = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    _times is None, reason="the native helpers exist in compiled installs only"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Later(datetime):
    """A subclass: the native text leaves it to the Python function."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "subclass " + super().isoformat(sep, timespec)


def _nanoseconds(rng: random.Random) -> list[int]:
    day = 86_400 * 10**9
    edges = [1, 999, 1000, 10**9 - 1, day - 1, day, 2**63, 2**64 - 1]
    # Month and leap-year ends: 2000 (leap), 2100 (not), 2024-02-29, 1972-12-31.
    for text in (
        "2000-02-29",
        "2000-03-01",
        "2100-02-28",
        "2100-03-01",
        "2024-02-29",
        "1972-12-31",
    ):
        start = datetime.fromisoformat(text).replace(tzinfo=UTC) - EPOCH
        base = (start.days * 86_400 + start.seconds) * 10**9
        edges += [base - 1, base, base + day - 1]
    return edges + [rng.randrange(1, 2**64) for _ in range(20_000)]


def test_times_from_nanoseconds_are_the_python_ones() -> None:
    for ns in _nanoseconds(random.Random(4)):
        made = _times.utc_from_unix_ns(ns)
        expected = EPOCH + timedelta(microseconds=ns // 1000)
        assert made == expected and made.tzinfo is UTC, ns
        assert (made.year, made.month, made.day, made.hour, made.minute, made.second) == (
            expected.year,
            expected.month,
            expected.day,
            expected.hour,
            expected.minute,
            expected.second,
        )
        assert made.microsecond == expected.microsecond


def test_the_decoder_uses_them_within_uint64_only() -> None:
    assert otlp.utc_from_unix_ns is _times.utc_from_unix_ns
    assert otlp._time(2**64 - 1, "t") == EPOCH + timedelta(microseconds=(2**64 - 1) // 1000)
    assert otlp._time(2**64 + 5000, "t") == EPOCH + timedelta(microseconds=(2**64 + 5000) // 1000)


def _datetimes(rng: random.Random) -> list[datetime]:
    zones = [UTC, None, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    out = []
    for _ in range(20_000):
        year = rng.choice([1, 999, 1000, 1970, 2026, 9999, rng.randrange(1, 10_000)])
        out.append(
            datetime(
                year,
                rng.randrange(1, 13),
                rng.randrange(1, 29),
                rng.randrange(24),
                rng.randrange(60),
                rng.randrange(60),
                rng.choice([0, 1, 999_999, rng.randrange(10**6)]),
                tzinfo=rng.choice(zones),
            )
        )
    out.append(Later(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    out.append(Later(2026, 1, 2, 3, 4, 5, 6))
    return out


def _outcome(function: Callable[[datetime], str], value: datetime) -> tuple[str, object]:
    try:
        return ("text", function(value))
    except Exception as exc:  # the same error, e.g. a time out of range once made UTC
        return ("error", type(exc))


def test_merge_key_texts_are_the_python_ones() -> None:
    assert isinstance(merge.time_text, _times.TimeText)
    for value in _datetimes(random.Random(5)):
        expected = _outcome(merge._time_text_of, value)
        assert _outcome(merge.time_text, value) == expected, value


def test_sqlite_column_texts_are_the_python_ones() -> None:
    assert isinstance(writes._sqlite_utc_text, _times.TimeText)
    errors = 0
    for value in _datetimes(random.Random(6)):
        expected = _outcome(writes._sqlite_utc_text_of, value)
        assert _outcome(writes._sqlite_utc_text, value) == expected, value
        errors += expected[0] == "error"
    assert errors > 0  # year 1 or 9999 out of range in UTC: the same error from both


def test_a_time_text_needs_one_ascii_separator() -> None:
    for sep in ("", "TT", "é"):
        with pytest.raises(ValueError):
            _times.TimeText(sep, str, False)
