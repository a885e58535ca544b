"""Admission over one scope's ledger state: periods, lapsed holds, the sliding window, budget and
RPM/TPM boundaries, retry-after, reruns, release."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.governance import Hold, LedgerState
from stages.governance.admission import Ask, iso, normalize, period_kind, release, reserve, status_of
from stages.governance.scopes import Scope

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC).timestamp()


def scope(**kw: object) -> Scope:
    base: dict[str, object] = {"key": "key.k1", "label": "key.k1", "level": "key.k1", "period": "day"}
    base.update(kw)
    return Scope(**base)  # type: ignore[arg-type]


def ask(rid: str = "r1", nusd: int = 100, tokens: int = 10) -> Ask:
    return Ask(request_id=rid, nusd=nusd, tokens=tokens, expires_at=NOW + 600)


def test_budget_admits_up_to_exactly_the_budget() -> None:
    s = scope(budget_nusd=300)
    state = LedgerState()
    for i in range(3):
        state, d, changed = reserve(state, s, ask(f"r{i}"), NOW)
        assert d.admitted and changed
    state, d, changed = reserve(state, s, ask("r3", nusd=1), NOW)
    assert not d.admitted and not changed and d.limit == "budget" and d.refused == "key.k1 budget"
    assert d.reset_at == datetime(2026, 12, 5, tzinfo=UTC).timestamp()
    assert "2026-12-05T00:00:00Z" in d.message() and "key.k1" in d.message()


def test_budget_counts_spent_plus_held() -> None:
    s = scope(budget_nusd=1000)
    state = LedgerState(period="2026-12-04", spent_nusd=800,
                        holds={"x": Hold(nusd=150, tokens=1, expires_at=NOW + 10, at=NOW)})
    assert reserve(state, s, ask(nusd=50), NOW)[1].admitted
    assert not reserve(state, s, ask(nusd=51), NOW)[1].admitted


def test_a_new_period_starts_from_zero() -> None:
    s = scope(budget_nusd=100)
    state = LedgerState(period="2026-12-03", spent_nusd=100)
    out, d, _ = reserve(state, s, ask(nusd=100), NOW)
    assert d.admitted and out.period == "2026-12-04" and out.spent_nusd == 0
    monthly = scope(budget_nusd=100, period="month")
    assert not reserve(LedgerState(period="2026-12", spent_nusd=100), monthly, ask(), NOW)[1].admitted
    assert reserve(LedgerState(period="2026-11", spent_nusd=100), monthly, ask(), NOW)[1].admitted


def test_period_boundaries_and_kinds() -> None:
    last_second = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert normalize(LedgerState(), "month", last_second).period == "2026-12"
    assert normalize(LedgerState(), "month", last_second + 1).period == "2027-01"
    assert normalize(LedgerState(), "day", last_second + 1).period == "2027-01-01"
    assert normalize(LedgerState(), "total", last_second).period == "total"
    assert [period_kind(p) for p in ("2026-12-04", "2026-12", "total", "")] == ["day", "month", "total", None]
    total = scope(budget_nusd=1, period="total")
    state = LedgerState(period="total", spent_nusd=1)
    refused = reserve(state, total, ask(nusd=1), NOW)[1]
    assert refused.reset_at is None and "does not reset" in refused.message()


def test_lapsed_holds_are_dropped() -> None:
    s = scope(budget_nusd=100)
    state = LedgerState(period="2026-12-04",
                        holds={"old": Hold(nusd=100, tokens=5, expires_at=NOW, at=NOW - 300)})
    out, d, _ = reserve(state, s, ask(nusd=100), NOW)
    assert d.admitted and set(out.holds) == {"r1"}


def test_window_keeps_the_last_60_seconds() -> None:
    state = LedgerState(requests={int(NOW) - 60: 5, int(NOW) - 59: 2, int(NOW): 1})
    out = normalize(state, None, NOW)
    assert out.requests == {int(NOW) - 59: 2, int(NOW): 1}
    assert out.in_window(NOW) == (3, 0)
    assert normalize(out, None, NOW) is out  # nothing to change: the same object


def test_rpm_refuses_the_one_past_the_limit_with_retry_after() -> None:
    s = scope(rpm=3, period=None)
    state = LedgerState(requests={int(NOW) - 50: 1, int(NOW) - 10: 1})
    state, d, _ = reserve(state, s, ask("a"), NOW + 0.25)
    assert d.admitted and d.status is not None and d.status.remaining_requests == 0
    _, d, changed = reserve(state, s, ask("b"), NOW + 0.25)
    assert not d.admitted and not changed and d.limit == "rpm"
    assert d.retry_after_s == 9.75  # the oldest (NOW-50) ages out at NOW+10
    # once it aged out, one more fits
    assert reserve(state, s, ask("b"), NOW + 10)[1].admitted


def test_rpm_window_accuracy_over_a_minute_of_steady_arrivals() -> None:
    """4 requests a second for 90 s against 120 RPM: the first minute admits exactly 120."""
    s = scope(rpm=120, period=None)
    state = LedgerState()
    admitted: list[float] = []
    for i in range(360):
        now = NOW + i * 0.25
        state, d, _ = reserve(state, s, ask(f"r{i}", tokens=0), now)
        if d.admitted:
            admitted.append(now)
    assert sum(1 for t in admitted if t < NOW + 60) == 120
    for t in admitted:  # never more than 120 in any 60 s window
        assert sum(1 for u in admitted if t - 60 < u <= t) <= 120


def test_tpm_checks_the_estimate_and_refuses_a_request_larger_than_the_limit() -> None:
    s = scope(tpm=100, period=None)
    state, d, _ = reserve(LedgerState(), s, ask("a", tokens=60), NOW)
    assert d.admitted and d.status is not None and d.status.remaining_tokens == 40
    refused = reserve(state, s, ask("b", tokens=41), NOW + 5)[1]
    assert refused.limit == "tpm" and refused.retry_after_s == 55
    too_big = reserve(LedgerState(), s, ask("c", tokens=101), NOW)[1]
    assert too_big.limit == "tpm" and too_big.retry_after_s == 60


def test_a_rerun_is_admitted_without_counting_twice() -> None:
    s = scope(rpm=1, budget_nusd=100)
    state, d, _ = reserve(LedgerState(), s, ask(nusd=100), NOW)
    again, d2, changed = reserve(state, s, ask(nusd=100), NOW + 1)
    assert d2.admitted and not changed and again.in_window(NOW + 1) == (1, 10)


def test_release_gives_back_the_hold_and_the_window_counts() -> None:
    s = scope(rpm=10, tpm=100, budget_nusd=100)
    state, _, _ = reserve(LedgerState(), s, ask(nusd=70, tokens=30), NOW)
    out, changed = release(state, "r1", NOW + 1)
    assert changed and out.holds == {} and out.in_window(NOW + 1) == (0, 0)
    assert release(out, "r1", NOW + 1) == (out, False)


def test_status_reports_the_time_until_the_oldest_count_ages_out() -> None:
    s = scope(rpm=10, tpm=1000, period=None)
    state = LedgerState(requests={int(NOW) - 30: 2}, tokens={int(NOW) - 30: 200})
    st = status_of(s, state, NOW)
    assert st is not None
    assert (st.limit_requests, st.remaining_requests, st.reset_requests_s) == (10, 8, 30)
    assert (st.limit_tokens, st.remaining_tokens, st.reset_tokens_s) == (1000, 800, 30)
    assert status_of(scope(budget_nusd=5), state, NOW) is None


def test_iso() -> None:
    assert iso(NOW) == "2026-12-04T12:00:00Z"
