"""The batch lane: the window halves on a load report over the limit (at most once per ``cut_every_s``),
grows back by an eighth only after a calm spell, within 1..maximum; the gate bounds lines in flight in
all and per tenant. Time is passed in: nothing sleeps."""

from __future__ import annotations

import pytest

from stages.batch_lane import LaneGate, LaneWindow


def test_a_report_over_the_limit_halves_the_window_at_once() -> None:
    window = LaneWindow(64, start=40, lag_limit_ms=40.0)
    window.report(40.0, now=10.0)  # at the limit: calm
    window.report(5.0, now=10.0)
    assert (window.size, window.cuts) == (40, 0)
    window.report(40.1, now=10.0)
    assert (window.size, window.cuts) == (20, 1)


def test_at_most_one_cut_per_cut_every_s() -> None:
    window = LaneWindow(64, start=40, cut_every_s=0.5)
    window.report(100.0, now=10.0)
    window.report(100.0, now=10.2)
    window.report(100.0, now=10.49)
    assert (window.size, window.cuts) == (20, 1)
    window.report(100.0, now=10.5)
    assert (window.size, window.cuts) == (10, 2)


def test_the_window_never_falls_below_one() -> None:
    window = LaneWindow(64, start=3, cut_every_s=0.5)
    for i in range(6):
        window.report(1000.0, now=float(i))
    assert (window.size, window.cuts) == (1, 6)


def test_room_is_bounded_by_the_window_and_the_tenant() -> None:
    gate = LaneGate(LaneWindow(100, start=10), per_tenant=4)
    assert gate.room("a") == 4
    gate.took("a", 3)
    assert (gate.room("a"), gate.room("b"), gate.total) == (1, 4, 3)
    gate.took("b", 4)
    gate.took("c", 2)
    assert (gate.total, gate.room("b"), gate.room("c"), gate.room("d")) == (9, 0, 1, 1)  # the window: 1 left
    gate.took("a")
    assert (gate.total, gate.room("a"), gate.room("d")) == (10, 0, 0)


def test_room_is_never_negative_when_the_window_shrinks_under_the_lines_in_flight() -> None:
    window = LaneWindow(100, start=10)
    gate = LaneGate(window, per_tenant=10)
    gate.took("a", 8)
    window.report(1000.0, now=0.0)
    assert (window.size, gate.room("a"), gate.room("b")) == (5, 0, 0)


def test_a_per_tenant_bound_below_one_is_one() -> None:
    gate = LaneGate(LaneWindow(10), per_tenant=0)
    assert gate.per_tenant == 1 and gate.room("a") == 1


def test_done_keeps_the_counts_and_forgets_an_idle_tenant() -> None:
    gate = LaneGate(LaneWindow(100, start=50), per_tenant=10)
    gate.took("a", 3)
    gate.took("b", 2)
    gate.done("a")
    assert dict(gate.inflight) == {"a": 2, "b": 2} and gate.total == 4
    gate.done("a", 2)
    assert dict(gate.inflight) == {"b": 2} and gate.room("a") == 10
    gate.done("b", 5)  # more than in flight: gone, not negative
    assert dict(gate.inflight) == {} and gate.total == 0


def _feed(window: LaneWindow, overhead_ms: float, now: float, count: int = 8) -> None:
    for i in range(count):
        window.observe(overhead_ms, 0.05, now - i * 0.05)


def test_the_window_starts_small_within_bounds() -> None:
    assert LaneWindow(64).lines == 4
    assert LaneWindow(2).lines == 2
    assert LaneWindow(64, start=100).lines == 64
    assert LaneWindow(0).lines == 1


def test_calm_lines_grow_the_window_by_an_eighth_at_least_one() -> None:
    window = LaneWindow(64, start=8, judge_every_s=0.5, calm_after_s=1.0)
    _feed(window, 5.0, now=10.0)
    window.tick(10.0)
    assert window.lines == 10  # 8 + max(1, 8/4)
    window.tick(10.2)  # judged less than judge_every_s ago: nothing
    assert window.lines == 10
    for step in range(1, 40):
        now = 10.0 + step * 0.5
        _feed(window, 5.0, now)
        window.tick(now)
    assert window.lines == 64  # never above the maximum


def test_lines_waiting_in_the_gateway_cut_the_window_by_a_quarter() -> None:
    window = LaneWindow(64, start=32, slack_ms=6.0, judge_every_s=0.5, cut_every_s=0.5, calm_after_s=2.0)
    _feed(window, 5.0, now=10.0)
    window.tick(10.0)  # the baseline: 5 ms
    before = window.lines
    _feed(window, 5.0 + 7.0, now=11.2)  # 7 ms over the baseline, more than the slack
    window.tick(11.2)
    assert window.lines == int(before * 0.75) and window.cuts == 1
    _feed(window, 5.0 + 4.0, now=12.5)  # within the slack: no cut, but too soon after one to grow
    window.tick(12.5)
    assert window.cuts == 1 and window.lines == int(before * 0.75)


def test_without_samples_the_window_stays() -> None:
    window = LaneWindow(64, start=8)
    window.tick(10.0)
    window.tick(11.0)
    assert window.lines == 8


def test_sends_are_spaced_by_the_line_latency_over_the_window() -> None:
    window = LaneWindow(64, start=4)
    assert window.spacing_s() == 0.0 and window.reserve(1.0) == 0.0  # nothing learnt yet: no wait
    window.observe(10.0, 0.2, 1.0)
    assert window.spacing_s() == pytest.approx(0.05)  # 0.2 s over 4 lines
    assert window.reserve(2.0) == 0.0
    assert window.reserve(2.0) == pytest.approx(0.05)  # the next slot is taken by the one before
    assert window.reserve(2.0) == pytest.approx(0.10)
