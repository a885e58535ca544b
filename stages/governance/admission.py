"""Admission over one scope's ``LedgerState``: is there budget and rate left for this request?

Every function takes the state as read and returns the state to write (``changed`` says whether there
is anything to write): a new budget period starts spend from zero, lapsed holds are dropped, the
per-second window keeps the last ``WINDOW_S`` seconds. A request is admitted when

    spent + held + its maximum cost <= budget,   requests in window + 1 <= rpm,   tokens in window + its tokens <= tpm

and then holds its maximum cost and counts one request and its estimated tokens in the current second.
A request that holds the scope already (a rerun) is admitted again without counting twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas.governance import WINDOW_S, Hold, LedgerState, RateLimitStatus, period_id, period_reset
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
    period_now, spent, changed = state.period, state.spent_nusd, False
    if period is not None and state.period != (current := period_id(period, now)):
        period_now, spent, changed = current, 0, True
    holds = state.holds
    if any(h.expires_at <= now for h in holds.values()):
        holds, changed = {rid: h for rid, h in holds.items() if h.expires_at > now}, True
    first = int(now) - WINDOW_S + 1
    requests, tokens = state.requests, state.tokens
    if any(s < first for s in requests):
        requests, changed = {s: n for s, n in requests.items() if s >= first}, True
    if any(s < first for s in tokens):
        tokens, changed = {s: n for s, n in tokens.items() if s >= first}, True
    if not changed:
        return state
    return LedgerState(schema_version=state.schema_version, period=period_now, spent_nusd=spent, holds=holds,
                       alerted=state.alerted, requests=requests, tokens=tokens)


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


def status_of(scope: Scope, state: LedgerState, now: float) -> RateLimitStatus | None:
    """The scope's request and token limits, what remains of them, and when they grow again."""
    if scope.rpm is None and scope.tpm is None:
        return None
    used_requests, used_tokens = state.in_window(now)
    return RateLimitStatus(
        limit_requests=scope.rpm,
        remaining_requests=max(0, scope.rpm - used_requests) if scope.rpm is not None else None,
        reset_requests_s=_oldest_reset(state.requests, now) if scope.rpm is not None else None,
        limit_tokens=scope.tpm,
        remaining_tokens=max(0, scope.tpm - used_tokens) if scope.tpm is not None else None,
        reset_tokens_s=_oldest_reset(state.tokens, now) if scope.tpm is not None else None,
    )


def reserve(state: LedgerState, scope: Scope, ask: Ask, now: float) -> tuple[LedgerState, Decision, bool]:
    """Admit ``ask`` on this scope or say why not; the new state and whether it changed."""
    state = normalize(state, scope.period, now)
    if ask.request_id in state.holds:  # a rerun of an admitted request: counted once
        return state, Decision(True, scope, status=status_of(scope, state, now)), False
    held_nusd, _ = state.held(now)
    if scope.budget_nusd is not None and state.spent_nusd + held_nusd + ask.nusd > scope.budget_nusd:
        reset = period_reset(scope.period, now) if scope.period is not None else None
        return state, Decision(False, scope, "budget", reset_at=reset, status=status_of(scope, state, now),
                               spent_nusd=state.spent_nusd, held_nusd=held_nusd), False
    used_requests, used_tokens = state.in_window(now)
    if scope.rpm is not None and used_requests + 1 > scope.rpm:
        retry = _age_out(state.requests, used_requests + 1 - scope.rpm, now)
        return state, Decision(False, scope, "rpm", retry_after_s=retry, status=status_of(scope, state, now)), False
    if scope.tpm is not None and used_tokens + ask.tokens > scope.tpm:
        retry = (float(WINDOW_S) if ask.tokens > scope.tpm
                 else _age_out(state.tokens, used_tokens + ask.tokens - scope.tpm, now))
        return state, Decision(False, scope, "tpm", retry_after_s=retry, status=status_of(scope, state, now)), False
    second = int(now)
    requests = dict(state.requests)
    requests[second] = requests.get(second, 0) + 1
    tokens = dict(state.tokens)
    tokens[second] = tokens.get(second, 0) + ask.tokens
    holds = dict(state.holds)
    holds[ask.request_id] = Hold(nusd=ask.nusd, tokens=ask.tokens, expires_at=ask.expires_at, at=now)
    out = LedgerState(schema_version=state.schema_version, period=state.period, spent_nusd=state.spent_nusd,
                      holds=holds, alerted=state.alerted, requests=requests, tokens=tokens)
    return out, Decision(True, scope, status=status_of(scope, out, now)), True


def release(state: LedgerState, request_id: str, now: float) -> tuple[LedgerState, bool]:
    """Give a reservation back as if the request never came (a later level refused it): its hold, its
    request and its tokens in the window. Nothing to do when it holds nothing (released already)."""
    state = normalize(state, period_kind(state.period), now)
    hold = state.holds.get(request_id)
    if hold is None:
        return state, False
    holds = {rid: h for rid, h in state.holds.items() if rid != request_id}
    requests, tokens = dict(state.requests), dict(state.tokens)
    second = int(hold.at)
    if second in requests:
        requests[second] -= 1
    if second in tokens:
        tokens[second] -= hold.tokens
    return LedgerState(schema_version=state.schema_version, period=state.period, spent_nusd=state.spent_nusd,
                       holds=holds, alerted=state.alerted, requests=requests, tokens=tokens), True
