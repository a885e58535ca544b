"""Outcome classification, failure windows and the latency EWMA (pure)."""

from __future__ import annotations

import pytest

from schemas.config import CircuitBreaker
from stages.health import LatencyEwma, SlidingWindow, classify

CFG = CircuitBreaker()


@pytest.mark.parametrize(("status", "code", "expected"), [
    (200, None, "ok"),
    (201, None, "ok"),
    (500, "upstream_error", "fail"),
    (502, None, "fail"),
    (503, None, "fail"),
    (504, None, "fail"),
    (400, "invalid_request", "neutral"),
    (401, None, "neutral"),
    (404, None, "neutral"),
    (429, "rate_limited", "neutral"),
    (501, None, "neutral"),
    (504, "provider_timeout", "fail"),
    (502, "provider_unreachable", "fail"),
    (200, "stream_interrupted", "fail"),  # a stream cut after its 200 headers
    (0, "provider_unreachable", "fail"),
])
def test_classify(status: int, code: str | None, expected: str) -> None:
    assert classify(status, code, CFG) == expected


def test_classify_follows_the_configured_status_codes() -> None:
    cfg = CircuitBreaker(failure_status_codes=[429, 503])
    assert classify(429, None, cfg) == "fail"
    assert classify(500, None, cfg) == "neutral"
    assert classify(503, None, cfg) == "fail"


def test_window_sums_counts_inside_the_window() -> None:
    w = SlidingWindow(30.0)
    assert w.width == 1.0
    w.add(1000.0, ok=3)
    w.add(1010.5, fail=2)
    w.add(1029.9, ok=1, fail=1)
    assert w.totals(1029.9) == (4, 3)


def test_window_forgets_old_buckets() -> None:
    w = SlidingWindow(30.0)
    w.add(1000.0, fail=5)
    w.add(1015.0, ok=2)
    assert w.totals(1029.0) == (2, 5)
    assert w.totals(1031.0) == (2, 0)  # the 1000 s bucket left the window
    assert w.totals(1046.0) == (0, 0)
    w.add(1060.0, ok=1)  # a slot reused for a new bucket starts from zero
    assert w.totals(1060.0) == (1, 0)


def test_window_reset() -> None:
    w = SlidingWindow(10.0)
    w.add(5.0, ok=1, fail=9)
    w.reset()
    assert w.totals(5.0) == (0, 0)


@pytest.mark.parametrize(("window_s", "buckets"), [(0.5, 10), (5.0, 10), (30.0, 30), (60.0, 60), (3600.0, 60)])
def test_window_bucket_count(window_s: float, buckets: int) -> None:
    assert SlidingWindow(window_s).width == pytest.approx(window_s / buckets)


def test_ewma_batch_equals_the_same_calls_one_by_one() -> None:
    one, batch = LatencyEwma(alpha=0.2), LatencyEwma(alpha=0.2)
    one.add(0.0, 100.0, 1)
    batch.add(0.0, 100.0, 1)
    for _ in range(5):
        one.add(1.0, 300.0, 1)
    batch.add(1.0, 1500.0, 5)
    assert batch.get(1.0) == pytest.approx(one.get(1.0))
    assert 100.0 < (batch.get(1.0) or 0) < 300.0


def test_ewma_first_value_and_staleness() -> None:
    e = LatencyEwma(stale_after_s=60.0)
    assert e.get(0.0) is None
    e.add(0.0, 500.0, 2)
    assert e.get(10.0) == 250.0
    assert e.get(61.0) is None
    e.add(100.0, 40.0, 1)  # after staleness the old value does not weigh in
    assert e.get(100.0) == 40.0
    e.add(101.0, 0.0, 0)
    assert e.get(101.0) == 40.0
