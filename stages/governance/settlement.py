"""Settling a request on one scope once it ended: its hold goes, its actual cost is spent in the current
period, its tokens in the window are corrected from the estimate to the actual count.

Settlement applies once: it acts only while the request's hold is there, and removes it. A request that
failed settles with its actual cost (0 when nothing was charged): the hold is released. The soft
threshold (``alert_at``) fires once per period (``LedgerState.alerted``).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.governance import WINDOW_S, LedgerState
from stages.governance.admission import normalize, period_kind
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


def settle(state: LedgerState, request_id: str, actual_nusd: int, actual_tokens: int, now: float,
           scope: Scope | None = None) -> tuple[LedgerState, Settled, bool]:
    """``scope``: the scope's limits as configured now, for the soft threshold (``None``: no alert)."""
    state = normalize(state, period_kind(state.period), now)
    hold = state.holds.get(request_id)
    if hold is None:
        return state, Settled(False), False
    holds = {rid: h for rid, h in state.holds.items() if rid != request_id}
    tokens = dict(state.tokens)
    second = int(hold.at)
    if second >= int(now) - WINDOW_S + 1 and second in tokens:
        tokens[second] += actual_tokens - hold.tokens
    spent = state.spent_nusd + (actual_nusd if state.period else 0)
    alerted = state.alerted
    alert = False
    if (scope is not None and scope.budget_nusd and scope.alert_at is not None and state.period
            and alerted != state.period and spent >= scope.alert_at * scope.budget_nusd):
        alerted, alert = state.period, True
    out = LedgerState(schema_version=state.schema_version, period=state.period, spent_nusd=spent, holds=holds,
                      alerted=alerted, requests=state.requests, tokens=tokens)
    return out, Settled(True, reserved_nusd=hold.nusd, overshoot_nusd=max(0, actual_nusd - hold.nusd),
                        alert=alert, spent_nusd=spent), True
