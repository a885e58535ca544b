"""Settlement: once, at actual cost, tokens corrected, the soft threshold once per period."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.governance import LedgerState
from stages.governance.admission import Ask, reserve
from stages.governance.scopes import Scope
from stages.governance.settlement import settle

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC).timestamp()
SCOPE = Scope(key="key.k1", label="key.k1", level="key.k1", budget_nusd=1000, tpm=10_000, period="day",
              alert_at=0.8)


def held(nusd: int = 500, tokens: int = 100, rid: str = "r1", state: LedgerState | None = None,
         expires_at: float = NOW + 600) -> LedgerState:
    out, d, _ = reserve(state or LedgerState(), SCOPE, Ask(rid, nusd, tokens, expires_at), NOW)
    assert d.admitted
    return out


def test_settles_at_actual_cost_and_corrects_tokens() -> None:
    state, done, changed = settle(held(), "r1", 120, 30, NOW + 2, SCOPE)
    assert changed and done.settled and done.reserved_nusd == 500 and done.overshoot_nusd == 0
    assert state.spent_nusd == 120 and state.holds == {} and state.in_window(NOW + 2) == (1, 30)


def test_settlement_is_idempotent() -> None:
    once, _, _ = settle(held(), "r1", 120, 30, NOW + 2, SCOPE)
    twice, done, changed = settle(once, "r1", 120, 30, NOW + 3, SCOPE)
    assert not done.settled and not changed and twice.spent_nusd == 120


def test_failure_releases_the_hold() -> None:
    state, done, _ = settle(held(), "r1", 0, 0, NOW + 1, SCOPE)
    assert done.settled and state.spent_nusd == 0 and state.held(NOW + 1) == (0, 0)
    assert state.in_window(NOW + 1) == (1, 0)  # it still was a request


def test_overshoot_is_settled_at_actual_and_reported() -> None:
    state, done, _ = settle(held(nusd=100), "r1", 250, 100, NOW + 1, SCOPE)
    assert state.spent_nusd == 250 and done.overshoot_nusd == 150


def test_token_correction_skipped_once_the_second_aged_out() -> None:
    state, _, _ = settle(held(), "r1", 0, 5, NOW + 70, SCOPE)
    assert state.tokens == {}


def test_settled_into_the_current_period() -> None:
    tomorrow = datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC).timestamp()
    state = held(expires_at=tomorrow + 60)
    state, _, _ = settle(state, "r1", 100, 10, tomorrow, SCOPE)
    assert state.period == "2026-12-05" and state.spent_nusd == 100


def test_a_lapsed_hold_no_longer_settles() -> None:
    state, done, _ = settle(held(), "r1", 100, 10, NOW + 601, SCOPE)
    assert not done.settled and state.spent_nusd == 0 and state.holds == {}


def test_soft_threshold_alerts_once_per_period() -> None:
    state = held(rid="a", nusd=400)
    state = held(rid="b", nusd=400, state=state)
    state, first, _ = settle(state, "a", 400, 1, NOW + 1, SCOPE)
    assert not first.alert
    state, second, _ = settle(state, "b", 400, 1, NOW + 1, SCOPE)
    assert second.alert and state.alerted == "2026-12-04"
    state = held(rid="c", nusd=100, state=state)
    state, third, _ = settle(state, "c", 100, 1, NOW + 2, SCOPE)
    assert not third.alert
    assert not settle(held(), "r1", 900, 1, NOW, None)[1].alert  # no scope known: no alert
