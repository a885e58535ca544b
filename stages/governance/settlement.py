"""Settling a request on one scope once it ended: its hold goes, its actual cost is spent in the current
period, its tokens in the window are corrected from the estimate to the actual count.

Settlement applies once: it acts only while the request's hold is there, and removes it. A request that
failed settles with its actual cost (0 when nothing was charged): the hold is released. The soft
threshold (``alert_at``) fires once per period (``LedgerState.alerted``).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.governance import LedgerState
from stages.governance.admission import period_kind
from stages.governance.draft import Draft
from stages.governance.scopes import Scope


@dataclass(frozen=True, slots=True)
class Settled:
    settled: bool
    """False: the request held nothing here (settled before, or its hold lapsed)."""
    reserved_nusd: int = 0
    overshoot_nusd: int = 0
    """How far the actual cost went past the reservation (a stream without ``max_tokens``)."""
    alert: bool = False
    """The spend crossed the scope's soft threshold for the first time this period."""
    spent_nusd: int = 0


def settle_on(draft: Draft, request_id: str, actual_nusd: int, actual_tokens: int,
              scope: Scope | None = None) -> Settled:
    """``scope``: the scope's limits as configured now, for the soft threshold (``None``: no alert)."""
    draft.roll(period_kind(draft.period))
    hold = draft.take_hold(request_id)
    if hold is None:
        return Settled(False)
    draft.count(int(hold.at), 0, actual_tokens - hold.tokens)
    if draft.period:
        draft.spent += actual_nusd
    alert = False
    if (scope is not None and scope.budget_nusd and scope.alert_at is not None and draft.period
            and draft.alerted != draft.period and draft.spent >= scope.alert_at * scope.budget_nusd):
        draft.alerted, alert = draft.period, True
    return Settled(True, reserved_nusd=hold.nusd, overshoot_nusd=max(0, actual_nusd - hold.nusd), alert=alert,
                   spent_nusd=draft.spent)


def settle(state: LedgerState, request_id: str, actual_nusd: int, actual_tokens: int, now: float,
           scope: Scope | None = None) -> tuple[LedgerState, Settled, bool]:
    """``settle_on`` on a state: the new state, what happened, whether it changed."""
    draft = Draft(state, now)
    done = settle_on(draft, request_id, actual_nusd, actual_tokens, scope)
    return draft.state(), done, draft.dirty
