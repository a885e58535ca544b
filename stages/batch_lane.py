"""How many batch lines a driver keeps in the chain, and how fast it sends them: pure logic, no I/O.

Batch lines run in stage processes of their own at the lowest CPU priority (``workers/app.py``
``lower_priority``), but they still share the machine's broker, the sink and the providers with
interactive requests, and a burst of lines is a queue at each of them. So the lane is paced by the one
thing that shows such a queue, the time each line spends in the gateway (its time in the chain less its
time at the provider, ``observe``): delay-based congestion control.

- **The window** (lines in flight) grows by a quarter every calm ``judge_every_s`` and is cut by a
  quarter when the 90th percentile of the overhead in the last second rises ``slack_ms`` over the
  uncongested baseline (the lowest such percentile seen in ``baseline_s``): the tail, since interactive
  callers feel a queue there first. A worker process reporting a late event loop
  (``gw.load.report``, ``report``) halves it at once.
- **Pacing**: lines are sent one by one, ``spacing_s`` apart (the line latency over the window), not in
  bursts as room opens.
- ``LaneGate`` adds the per-tenant bound, so one tenant's large batch cannot hold the whole lane while
  another tenant's waits.
"""

from __future__ import annotations

from collections import Counter, deque


class LaneWindow:
    def __init__(self, maximum: int, *, start: int = 4, slack_ms: float = 3.0, judge_every_s: float = 0.5,
                 baseline_s: float = 30.0, calm_after_s: float = 1.0, lag_limit_ms: float = 40.0,
                 cut_every_s: float = 0.5, min_samples: int = 4) -> None:
        self.maximum = max(1, maximum)
        self.size = float(max(1, min(self.maximum, start)))
        self.slack_ms = slack_ms
        self.judge_every_s = judge_every_s
        self.baseline_s = baseline_s
        self.calm_after_s = calm_after_s
        self.lag_limit_ms = lag_limit_ms
        self.cut_every_s = cut_every_s
        self.min_samples = min_samples
        self._samples: deque[tuple[float, float]] = deque()  # (when, overhead ms)
        self._medians: deque[tuple[float, float]] = deque()  # (when, median of the second before)
        self._latency_s = 0.0  # smoothed whole line latency (for the spacing)
        self._last_cut = float("-inf")
        self._last_judged = float("-inf")
        self._next_at = float("-inf")
        self.cuts = 0

    @property
    def lines(self) -> int:
        """Lines in flight allowed now."""
        return max(1, int(self.size))

    @property
    def baseline_ms(self) -> float | None:
        return min((m for _, m in self._medians), default=None)

    def observe(self, overhead_ms: float, latency_s: float, now: float) -> None:
        """A line came back: ``overhead_ms`` of its time was the gateway's, ``latency_s`` in all."""
        self._samples.append((now, max(0.0, overhead_ms)))
        self._latency_s = latency_s if not self._latency_s else 0.8 * self._latency_s + 0.2 * latency_s

    def spacing_s(self) -> float:
        """How long to wait between two lines sent (0 before any line came back)."""
        return self._latency_s / self.lines if self._latency_s else 0.0

    def reserve(self, now: float) -> float:
        """Take the next send slot (shared by every job of the process): how long to wait before sending."""
        at = max(now, self._next_at)
        self._next_at = at + self.spacing_s()
        return at - now

    def report(self, lag_ms: float, now: float) -> None:
        """A worker process's load report: halve the window when its event loop runs late."""
        if lag_ms <= self.lag_limit_ms or now - self._last_cut < self.cut_every_s:
            return
        self._cut(now, 0.5)

    def tick(self, now: float) -> None:
        """Judge the last second: cut when lines wait in the gateway, grow while they do not."""
        if now - self._last_judged < self.judge_every_s:
            return
        self._last_judged = now
        while self._samples and self._samples[0][0] < now - 1.0:
            self._samples.popleft()
        while self._medians and self._medians[0][0] < now - self.baseline_s:
            self._medians.popleft()
        if len(self._samples) < self.min_samples:
            return  # nothing to judge by (idle, or just started): stay
        median = _p90([ms for _, ms in self._samples])
        baseline = self.baseline_ms
        self._medians.append((now, median))
        if baseline is not None and median > baseline + self.slack_ms:
            if now - self._last_cut >= self.cut_every_s:
                self._cut(now, 0.75)
        elif now - self._last_cut >= self.calm_after_s:
            self.size = min(float(self.maximum), self.size + max(1.0, self.size / 4))

    def _cut(self, now: float, factor: float) -> None:
        self.size = max(1.0, self.size * factor)
        self._last_cut = now
        self.cuts += 1


def _p90(values: list[float]) -> float:
    """The 90th percentile: the tail, where a queue behind batch lines shows first."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


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
        return max(0, min(self.window.lines - self.total, self.per_tenant - self.inflight[tenant]))

    def took(self, tenant: str, count: int = 1) -> None:
        self.inflight[tenant] += count

    def done(self, tenant: str, count: int = 1) -> None:
        left = self.inflight[tenant] - count
        if left > 0:
            self.inflight[tenant] = left
        else:
            del self.inflight[tenant]
