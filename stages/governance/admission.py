"""Admission over one scope's ``LedgerState``: is there budget and rate left for this request?

The decisions (``admit``, ``give_back``) work on a ``Draft`` of the state (``draft.py``): a new budget
period starts spend from zero, lapsed holds are dropped, the per-second window keeps the last
``WINDOW_S`` seconds; ``reserve``/``release`` are the same on a ``LedgerState``. A request is admitted when

    spent + held + its maximum cost <= budget,   requests in window + 1 <= rpm,   tokens in window + its tokens <= tpm

and then holds its maximum cost and counts one request and its estimated tokens in the current second.
A request that holds the scope already (a rerun) is admitted again without counting twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas.governance import WINDOW_S, Hold, LedgerState, RateLimitStatus, period_reset
from stages.governance.draft import Draft
from stages.governance.scopes import Scope

LimitKind = Literal["", "budget", "rpm", "tpm"]


@dataclass(frozen=True, slots=True)
class Ask:
    """What a request asks of a scope: its maximum cost and estimated tokens, held until ``expires_at``."""

    request_id: str
    nusd: int
    tokens: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    scope: Scope
    limit: LimitKind = ""
    retry_after_s: float | None = None
    """Refused by RPM/TPM: when enough of the window ages out for this request to pass."""
    reset_at: float | None = None
    """Refused by the budget: when its period ends (``None`` for a ``total`` budget)."""
    status: RateLimitStatus | None = None
    spent_nusd: int = 0
    held_nusd: int = 0

    @property
    def refused(self) -> str:
        """``"key.k1 budget"``, ``"team.x rpm"``; ``""`` when admitted."""
        return "" if self.admitted else f"{self.scope.label} {self.limit}"

    def message(self) -> str:
        label, limit = self.scope.label, self.limit
        if limit == "budget":
            budget = self.scope.budget_nusd or 0
            when = ("it is a total budget and does not reset" if self.reset_at is None
                    else f"the {self.scope.period} period resets at {iso(self.reset_at)}")
            return (f"Budget exceeded for {label}: {_usd(self.spent_nusd)} spent and {_usd(self.held_nusd)} "
                    f"reserved of {_usd(budget)} this period; {when}.")
        limit_value = self.scope.rpm if limit == "rpm" else self.scope.tpm
        unit = "requests" if limit == "rpm" else "tokens"
        after = f"; retry after {self.retry_after_s:.0f}s" if self.retry_after_s is not None else ""
        return f"Rate limit reached for {label}: {limit_value} {unit} per minute ({limit.upper()}){after}."


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usd(nusd: int) -> str:
    return f"${nusd / 1e9:.6f}".rstrip("0").rstrip(".")


def period_kind(period: str) -> Literal["day", "month", "total"] | None:
    """The kind of a period id as ``period_id`` writes it (``"2026-12-04"``, ``"2026-12"``, ``"total"``)."""
    if period == "total":
        return "total"
    if len(period) == 10:
        return "day"
    if len(period) == 7:
        return "month"
    return None


def normalize(state: LedgerState, period: Literal["day", "month", "total"] | None, now: float) -> LedgerState:
    """The state as of ``now``: the current budget period (spend from zero in a new one), live holds
    only, the window's last ``WINDOW_S`` seconds only. Returns ``state`` itself when nothing changed."""
    draft = Draft(state, now)
    draft.roll(period)
    out = draft.state()
    return state if out == state else out


def _age_out(buckets: dict[int, int], excess: int, now: float) -> float:
    """Seconds until ``excess`` of the window's counts have aged out (the oldest go first)."""
    first = int(now) - WINDOW_S + 1
    gone = 0
    for second in sorted(s for s in buckets if s >= first):
        gone += buckets[second]
        if gone >= excess:
            return max(0.0, second + WINDOW_S - now)
    return float(WINDOW_S)


def _oldest_reset(buckets: dict[int, int], now: float) -> float:
    """Seconds until the oldest count in the window ages out (when what remains grows again)."""
    first = int(now) - WINDOW_S + 1
    live = [s for s, n in buckets.items() if s >= first and n > 0]
    return max(0.0, min(live) + WINDOW_S - now) if live else 0.0


def status(scope: Scope, draft: Draft) -> RateLimitStatus | None:
    """The scope's request and token limits, what remains of them, and when they grow again."""
    if scope.rpm is None and scope.tpm is None:
        return None
    now = draft.now
    return RateLimitStatus(
        limit_requests=scope.rpm,
        remaining_requests=max(0, scope.rpm - draft.window_requests) if scope.rpm is not None else None,
        reset_requests_s=_oldest_reset(draft.requests, now) if scope.rpm is not None else None,
        limit_tokens=scope.tpm,
        remaining_tokens=max(0, scope.tpm - draft.window_tokens) if scope.tpm is not None else None,
        reset_tokens_s=_oldest_reset(draft.tokens, now) if scope.tpm is not None else None,
    )


def status_of(scope: Scope, state: LedgerState, now: float) -> RateLimitStatus | None:
    return status(scope, Draft(state, now))


def admit(draft: Draft, scope: Scope, ask: Ask) -> Decision:
    """Admit ``ask`` on this scope (its hold and counts added to the draft) or say why not."""
    draft.roll(scope.period)
    if ask.request_id in draft.holds:  # a rerun of an admitted request: counted once
        return Decision(True, scope, status=status(scope, draft))
    now = draft.now
    if scope.budget_nusd is not None and draft.spent + draft.held_nusd + ask.nusd > scope.budget_nusd:
        reset = period_reset(scope.period, now) if scope.period is not None else None
        return Decision(False, scope, "budget", reset_at=reset, status=status(scope, draft),
                        spent_nusd=draft.spent, held_nusd=draft.held_nusd)
    if scope.rpm is not None and draft.window_requests + 1 > scope.rpm:
        retry = _age_out(draft.requests, draft.window_requests + 1 - scope.rpm, now)
        return Decision(False, scope, "rpm", retry_after_s=retry, status=status(scope, draft))
    if scope.tpm is not None and draft.window_tokens + ask.tokens > scope.tpm:
        retry = (float(WINDOW_S) if ask.tokens > scope.tpm
                 else _age_out(draft.tokens, draft.window_tokens + ask.tokens - scope.tpm, now))
        return Decision(False, scope, "tpm", retry_after_s=retry, status=status(scope, draft))
    draft.add_hold(ask.request_id, Hold(nusd=ask.nusd, tokens=ask.tokens, expires_at=ask.expires_at, at=now))
    return Decision(True, scope, status=status(scope, draft))


def give_back(draft: Draft, request_id: str) -> bool:
    """Give a reservation back as if the request never came (a later level refused it): its hold, its
    request and its tokens in the window. False when it holds nothing (given back already)."""
    draft.roll(period_kind(draft.period))
    hold = draft.take_hold(request_id)
    if hold is None:
        return False
    draft.count(int(hold.at), -1, -hold.tokens)
    return True


def reserve(state: LedgerState, scope: Scope, ask: Ask, now: float) -> tuple[LedgerState, Decision, bool]:
    """``admit`` on a state: the new state, the decision, whether it changed."""
    draft = Draft(state, now)
    decision = admit(draft, scope, ask)
    return draft.state(), decision, draft.dirty


def release(state: LedgerState, request_id: str, now: float) -> tuple[LedgerState, bool]:
    """``give_back`` on a state: the new state and whether it changed."""
    draft = Draft(state, now)
    changed = give_back(draft, request_id)
    return draft.state(), changed
