"""The breaker state machine (pure): thresholds, cooldown, probe slots, cooldown growth."""

from __future__ import annotations

import pytest

from schemas.config import CircuitBreaker
from stages.breaker import (
    CLOSED,
    MAX_COOLDOWN_S,
    BreakerState,
    admission,
    claim,
    cooldown_for,
    failure_reason,
    probe_timeout,
    settle,
    trip,
)

CFG = CircuitBreaker(min_requests=10, failure_rate=0.5, cooldown_s=10.0, window_s=30.0)
T0 = 1_700_000_000.0


def opened(cfg: CircuitBreaker = CFG) -> BreakerState:
    t = trip(CLOSED, 2, 8, T0, cfg)
    assert t is not None
    return t.after


def half_open(cfg: CircuitBreaker = CFG) -> BreakerState:
    t = claim(opened(cfg), T0 + cfg.cooldown_s, cfg)
    assert t is not None
    return t.after


def test_no_trip_below_min_requests() -> None:
    assert failure_reason(0, 9, CFG) is None
    assert trip(CLOSED, 0, 9, T0, CFG) is None


def test_trip_on_failure_rate() -> None:
    assert failure_reason(6, 4, CFG) is None
    t = trip(CLOSED, 5, 8, T0, CFG)
    assert t is not None and t.changes_state
    assert (t.before.state, t.after.state) == ("closed", "open")
    assert t.reason == "failure_rate 0.62 over 13 calls in 30 s"
    assert t.attrs.ok == 5 and t.attrs.fail == 8
    assert t.after.since == T0 and t.after.cooldown_s == 10.0 and t.after.opens == 1


def test_trip_on_failure_count_even_at_a_low_rate() -> None:
    cfg = CircuitBreaker(min_requests=10, failure_rate=0.9, failure_count=3)
    reason = failure_reason(97, 3, cfg)
    assert reason == "failure_count 3 over 100 calls in 30 s"
    assert failure_reason(98, 2, cfg) is None
    assert failure_reason(1, 9, cfg) is not None  # the rate still applies


def test_no_trip_without_failures_or_when_not_closed() -> None:
    assert failure_reason(100, 0, CircuitBreaker(min_requests=1, failure_rate=0.01)) is None
    assert trip(opened(), 0, 100, T0, CFG) is None


def test_open_skips_until_the_cooldown_passed() -> None:
    state = opened()
    assert admission(state, T0 + 4.0, CFG) == ("skip", pytest.approx(6.0))
    assert admission(state, T0 + 10.0, CFG) == ("claim", None)
    assert claim(state, T0 + 9.0, CFG) is None


def test_first_claim_half_opens() -> None:
    t = claim(opened(), T0 + 12.0, CFG)
    assert t is not None and t.changes_state
    assert (t.before.state, t.after.state) == ("open", "half_open")
    assert t.after.claims == (T0 + 12.0,) and t.after.passed == 0


def test_probe_slots_are_limited() -> None:
    cfg = CFG.model_copy(update={"half_open_probes": 2})
    state = half_open(cfg)
    now = T0 + 10.0
    assert admission(state, now, cfg) == ("claim", None)
    second = claim(state, now, cfg)
    assert second is not None and not second.changes_state
    assert admission(second.after, now, cfg) == ("skip", None)
    assert claim(second.after, now, cfg) is None


def test_a_stale_claim_frees_its_slot() -> None:
    state = half_open()
    claimed_at = state.claims[0]
    assert probe_timeout(CFG) == 30.0
    assert admission(state, claimed_at + 29.0, CFG) == ("skip", None)
    t = claim(state, claimed_at + 30.0, CFG)
    assert t is not None and t.after.claims == (claimed_at + 30.0,)
    assert probe_timeout(CFG.model_copy(update={"cooldown_s": 120.0})) == 120.0


def test_all_probes_ok_closes() -> None:
    cfg = CFG.model_copy(update={"half_open_probes": 2})
    state = half_open(cfg)
    claimed = claim(state, T0 + 10.0, cfg)
    assert claimed is not None
    state = claimed.after
    first = settle(state, "ok", "r:b:1:0", T0 + 11.0, cfg)
    assert first is not None and not first.changes_state
    assert first.after.passed == 1 and len(first.after.claims) == 1
    assert settle(first.after, "ok", "r:b:1:0", T0 + 11.0, cfg) is None  # the same outcome twice: no-op
    second = settle(first.after, "ok", "r:b:2:0", T0 + 12.0, cfg)
    assert second is not None and second.changes_state
    assert second.after == BreakerState(state="closed", since=T0 + 12.0)
    assert second.reason == "2 of 2 probes succeeded"


def test_a_failed_probe_reopens_with_a_doubled_cooldown() -> None:
    state = half_open()
    t = settle(state, "fail", "p1", T0 + 11.0, CFG)
    assert t is not None and (t.before.state, t.after.state) == ("half_open", "open")
    assert t.after.opens == 2 and t.after.cooldown_s == 20.0 and t.after.since == T0 + 11.0
    assert admission(t.after, T0 + 25.0, CFG) == ("skip", pytest.approx(6.0))
    assert settle(t.after, "ok", "p2", T0 + 12.0, CFG) is None  # outcomes while open are ignored


def test_a_neutral_probe_frees_the_slot_only() -> None:
    state = half_open()
    t = settle(state, "neutral", "p1", T0 + 11.0, CFG)
    assert t is not None and t.after.state == "half_open"
    assert t.after.claims == () and t.after.passed == 0
    assert admission(t.after, T0 + 11.0, CFG) == ("claim", None)


def test_cooldown_growth_and_cap() -> None:
    assert [cooldown_for(n, CFG) for n in range(1, 8)] == [10, 20, 40, 80, 160, MAX_COOLDOWN_S, MAX_COOLDOWN_S]
    long = CircuitBreaker(cooldown_s=600.0)
    assert cooldown_for(1, long) == 600.0 and cooldown_for(5, long) == 600.0
    assert cooldown_for(10_000, CFG) == MAX_COOLDOWN_S


def test_closing_resets_the_growth() -> None:
    state = half_open()
    closed = settle(state, "ok", "p", T0 + 11.0, CFG)
    assert closed is not None and closed.after.opens == 0
    reopened = trip(closed.after, 0, 10, T0 + 20.0, CFG)
    assert reopened is not None and reopened.after.cooldown_s == 10.0


def test_state_round_trips_and_bad_values_read_as_closed() -> None:
    state = half_open()
    assert BreakerState.from_dict(state.as_dict()) == state
    assert BreakerState.from_dict(None) == CLOSED
    assert BreakerState.from_dict({"state": "weird"}) == CLOSED
    assert BreakerState.from_dict({"state": "open", "since": "x"}) == CLOSED
