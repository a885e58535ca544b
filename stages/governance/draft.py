"""A scope's ledger state as one batch of decisions works on it: copied and brought up to date once
(lapsed holds dropped, the window trimmed to its last ``WINDOW_S`` seconds, the held and windowed sums
counted), then changed in place by each decision, and written back once. Every decision is O(1) in the
number of holds: a batch of n decisions over h holds costs O(n + h), not O(n × h).
"""

from __future__ import annotations

from schemas.governance import WINDOW_S, BudgetPeriod, Hold, LedgerState, period_id


class Draft:
    __slots__ = ("now", "period", "spent", "alerted", "holds", "requests", "tokens", "held_nusd",
                 "window_requests", "window_tokens", "dirty", "_base")

    def __init__(self, state: LedgerState, now: float) -> None:
        self.now = now
        self._base = state
        self.period = state.period
        self.spent = state.spent_nusd
        self.alerted = state.alerted
        first = int(now) - WINDOW_S + 1
        self.holds = {rid: h for rid, h in state.holds.items() if h.expires_at > now}
        self.requests = {s: n for s, n in state.requests.items() if s >= first}
        self.tokens = {s: n for s, n in state.tokens.items() if s >= first}
        self.held_nusd = sum(h.nusd for h in self.holds.values())
        self.window_requests = sum(self.requests.values())
        self.window_tokens = sum(self.tokens.values())
        self.dirty = False
        """Whether a decision changed something worth writing (bringing the state up to date alone is not)."""

    def roll(self, period: BudgetPeriod | None) -> None:
        """Count spend in the period ``now`` falls in (a new period starts from zero)."""
        if period is not None:
            current = period_id(period, self.now)
            if self.period != current:
                self.period, self.spent = current, 0

    def in_window(self, second: int) -> bool:
        return second >= int(self.now) - WINDOW_S + 1

    def add_hold(self, request_id: str, hold: Hold) -> None:
        second = int(hold.at)
        self.holds[request_id] = hold
        self.held_nusd += hold.nusd
        self.requests[second] = self.requests.get(second, 0) + 1
        self.tokens[second] = self.tokens.get(second, 0) + hold.tokens
        self.window_requests += 1
        self.window_tokens += hold.tokens
        self.dirty = True

    def take_hold(self, request_id: str) -> Hold | None:
        hold = self.holds.pop(request_id, None)
        if hold is not None:
            self.held_nusd -= hold.nusd
            self.dirty = True
        return hold

    def count(self, second: int, requests: int, tokens: int) -> None:
        """Add to the window's counts of ``second`` (negative: take away), if it is still in the window."""
        if not self.in_window(second):
            return
        if requests:
            self.requests[second] = self.requests.get(second, 0) + requests
            self.window_requests += requests
        if tokens:
            self.tokens[second] = self.tokens.get(second, 0) + tokens
            self.window_tokens += tokens
        self.dirty = True

    def state(self) -> LedgerState:
        return LedgerState(schema_version=self._base.schema_version, period=self.period, spent_nusd=self.spent,
                           holds=self.holds, alerted=self.alerted, requests=self.requests, tokens=self.tokens)
