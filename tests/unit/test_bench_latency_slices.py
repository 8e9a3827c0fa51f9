"""The ingest benchmarks give reply times by slices of the measured window as well as over all
of it: each request falls in the slice in which it started, and each slice has its own p50 and
p99 (the store grows over a run, and reply times with it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _common import format_latency_slices, latency_by_slice  # noqa: E402


def test_each_request_counts_in_the_slice_it_started_in() -> None:
    origin = 100.0
    # 200 requests in the first 5 s at 10 ms but two (800 and 900 ms); 50 in the next 5 s.
    started = [origin + i * 0.025 for i in range(200)] + [origin + 5 + i * 0.1 for i in range(50)]
    latencies = [10.0] * 198 + [800.0, 900.0] + [40.0] * 50
    slices = latency_by_slice(started, latencies, origin, 5.0)
    assert slices == [
        {"from_s": 0.0, "to_s": 5.0, "requests": 200, "p50": 10.0, "p99": 10.0},
        {"from_s": 5.0, "to_s": 10.0, "requests": 50, "p50": 40.0, "p99": 40.0},
    ]
    latencies[0] = 700.0  # a third slow reply of 200 reaches the first slice's p99
    assert latency_by_slice(started, latencies, origin, 5.0)[0]["p99"] == 700.0
    assert format_latency_slices(slices) == "0-5 s 10/10, 5-10 s 40/40"


def test_a_slice_without_requests_is_left_out_and_early_starts_count_in_the_first() -> None:
    started = [9.9, 10.0, 21.0]  # one due just before the window opened (a late reply)
    slices = latency_by_slice(started, [5.0, 6.0, 7.0], 10.0, 5.0)
    assert [(s["from_s"], s["requests"]) for s in slices] == [(0.0, 2), (10.0, 1)]
    assert latency_by_slice([], [], 0.0, 5.0) == []


@pytest.mark.parametrize(
    ("started", "latencies", "slice_s", "message"),
    [([1.0], [1.0], 0.0, "slice_s must be positive"), ([1.0], [], 5.0, "one start per latency")],
)
def test_bad_arguments_are_refused(
    started: list[float], latencies: list[float], slice_s: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        latency_by_slice(started, latencies, 0.0, slice_s)
