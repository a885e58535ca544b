"""How many batch lines a driver keeps in the chain: pure logic, no I/O.

Batch lines share the stage processes with interactive requests, so they must only use what
interactive traffic leaves. ``LaneWindow`` is additive-increase, multiplicative-decrease on the one
signal every worker process already sends when it falls behind (``gw.load.report``: its event loop runs
late, or requests waited in ``GW_REQ``): a report over ``lag_limit_ms`` halves the window at once
(at most once per ``cut_every_s``), and a calm second lets it grow by an eighth again, up to
``maximum``. ``LaneGate`` adds the per-tenant bound, so one tenant's large batch cannot hold the whole
lane while another tenant's waits.
"""

from __future__ import annotations

from collections import Counter


class LaneWindow:
    def __init__(self, maximum: int, *, start: int | None = None, lag_limit_ms: float = 40.0,
                 cut_every_s: float = 0.5, grow_every_s: float = 1.0, calm_after_s: float = 2.0) -> None:
        self.maximum = max(1, maximum)
        self.size = max(1, min(self.maximum, start if start is not None else max(4, self.maximum // 4)))
        self.lag_limit_ms = lag_limit_ms
        self.cut_every_s = cut_every_s
        self.grow_every_s = grow_every_s
        self.calm_after_s = calm_after_s
        self._last_cut = float("-inf")
        self._last_grow = float("-inf")
        self.cuts = 0

    def report(self, lag_ms: float, now: float) -> None:
        """A worker process's load report: halve the window when it says interactive requests wait."""
        if lag_ms <= self.lag_limit_ms or now - self._last_cut < self.cut_every_s:
            return
        self.size = max(1, self.size // 2)
        self._last_cut = now
        self.cuts += 1

    def tick(self, now: float) -> None:
        """Time passes: grow again once nothing has complained for ``calm_after_s``."""
        if now - self._last_cut < self.calm_after_s or now - self._last_grow < self.grow_every_s:
            return
        self.size = min(self.maximum, self.size + max(1, self.size // 8))
        self._last_grow = now


class LaneGate:
    """Lines in flight, in all and per tenant, against the window and the per-tenant bound."""

    def __init__(self, window: LaneWindow, per_tenant: int) -> None:
        self.window = window
        self.per_tenant = max(1, per_tenant)
        self.inflight: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.inflight.values())

    def room(self, tenant: str) -> int:
        """How many more lines of ``tenant`` may enter the chain now."""
        return max(0, min(self.window.size - self.total, self.per_tenant - self.inflight[tenant]))

    def took(self, tenant: str, count: int = 1) -> None:
        self.inflight[tenant] += count

    def done(self, tenant: str, count: int = 1) -> None:
        left = self.inflight[tenant] - count
        if left > 0:
            self.inflight[tenant] = left
        else:
            del self.inflight[tenant]
