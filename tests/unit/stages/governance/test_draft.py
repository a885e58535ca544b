"""A batch's draft of a ledger state: brought up to date once, running sums kept as decisions change it."""

from __future__ import annotations

from schemas.governance import Hold, LedgerState
from stages.governance.draft import Draft

NOW = 1_796_400_000.0


def test_brought_up_to_date_once_with_running_sums() -> None:
    state = LedgerState(period="2026-12", spent_nusd=5,
                        holds={"live": Hold(nusd=7, tokens=3, expires_at=NOW + 1, at=NOW - 2),
                               "lapsed": Hold(nusd=100, tokens=1, expires_at=NOW, at=NOW - 200)},
                        requests={int(NOW) - 60: 9, int(NOW) - 2: 1}, tokens={int(NOW) - 2: 3})
    draft = Draft(state, NOW)
    assert (draft.held_nusd, draft.window_requests, draft.window_tokens, draft.dirty) == (7, 1, 3, False)
    draft.add_hold("new", Hold(nusd=10, tokens=4, expires_at=NOW + 60, at=NOW))
    assert (draft.held_nusd, draft.window_requests, draft.window_tokens, draft.dirty) == (17, 2, 7, True)
    taken = draft.take_hold("live")
    assert taken is not None and draft.held_nusd == 10 and draft.take_hold("live") is None
    draft.count(int(NOW) - 2, -1, -3)
    draft.count(int(NOW) - 61, 5, 5)  # aged out: not counted
    out = draft.state()
    assert out.holds == {"new": Hold(nusd=10, tokens=4, expires_at=NOW + 60, at=NOW)}
    assert out.requests == {int(NOW) - 2: 0, int(NOW): 1} and out.tokens == {int(NOW) - 2: 0, int(NOW): 4}
    assert state.holds.keys() == {"live", "lapsed"}  # the state read is never changed


def test_roll_starts_a_new_period_from_zero() -> None:
    draft = Draft(LedgerState(period="2026-11", spent_nusd=5), NOW)  # NOW is in December 2026
    draft.roll("month")
    assert (draft.period, draft.spent, draft.dirty) == ("2026-12", 0, False)
    draft.roll(None)
    assert draft.period == "2026-12"
