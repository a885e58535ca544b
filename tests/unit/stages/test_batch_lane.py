"""The batch lane: the window halves on a load report over the limit (at most once per ``cut_every_s``),
grows back by an eighth only after a calm spell, within 1..maximum; the gate bounds lines in flight in
all and per tenant. Time is passed in: nothing sleeps."""

from __future__ import annotations

from stages.batch_lane import LaneGate, LaneWindow


def test_the_window_starts_at_a_quarter_of_the_maximum_at_least_four_within_bounds() -> None:
    assert LaneWindow(64).size == 16
    assert LaneWindow(8).size == 4
    assert LaneWindow(2).size == 2  # never above the maximum
    assert LaneWindow(0).maximum == 1 and LaneWindow(0).size == 1
    assert LaneWindow(64, start=40).size == 40
    assert LaneWindow(64, start=100).size == 64
    assert LaneWindow(64, start=0).size == 1


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


def test_it_grows_only_after_calm_after_s_and_once_per_grow_every_s() -> None:
    window = LaneWindow(64, start=32, calm_after_s=2.0, grow_every_s=1.0)
    window.report(100.0, now=10.0)
    assert window.size == 16
    window.tick(now=11.0)
    window.tick(now=11.99)
    assert window.size == 16  # not calm long enough
    window.tick(now=12.0)
    assert window.size == 18  # by an eighth
    window.tick(now=12.5)
    assert window.size == 18  # once per grow_every_s
    window.tick(now=13.0)
    assert window.size == 20
    window.report(100.0, now=13.5)  # a new complaint restarts the calm spell
    assert window.size == 10
    window.tick(now=15.0)
    assert window.size == 10
    window.tick(now=15.5)
    assert window.size == 11


def test_growth_is_at_least_one_and_never_above_the_maximum() -> None:
    small = LaneWindow(64, start=1)
    small.tick(now=0.0)
    assert small.size == 2  # an eighth of 1 is 0: one line more
    full = LaneWindow(20, start=19)
    for second in range(5):
        full.tick(now=float(second))
    assert full.size == 20


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
