"""Live per-target health, pure: what one provider call counts as, failure windows, latency EWMA.

The provider stage classifies every attempt (``classify``): ``ok`` (2xx), ``fail`` (a status the
circuit breaker counts, or a transport failure), ``neutral`` (the request's own fault, e.g. 400, 401,
404, 429 unless configured: it says nothing about the target's health). Routing replicas keep, per
target, a ``SlidingWindow`` of ok/fail counts (what the breaker trips on) and a ``LatencyEwma`` of ok
calls (what ``least_latency`` reads). No I/O here: the NATS wiring lives in
``workers/health_reporter.py`` (provider side) and ``workers/health_monitor.py`` (routing side).
"""

from __future__ import annotations

import math
from typing import Literal

from schemas.config import CircuitBreaker

Outcome = Literal["ok", "fail", "neutral"]

TRANSPORT_FAILURES = frozenset({"provider_timeout", "provider_unreachable", "stream_interrupted"})
"""Error codes (``schemas/errors.py``) that always count against the target, whatever the status."""


def classify(status: int, code: str | None, cfg: CircuitBreaker) -> Outcome:
    """One attempt's outcome for the breaker. A transport failure counts even after a 2xx status
    (a stream cut after its headers)."""
    if code is not None and code in TRANSPORT_FAILURES:
        return "fail"
    if 200 <= status < 300:
        return "ok"
    if status in cfg.failure_status_codes:
        return "fail"
    return "neutral"


class SlidingWindow:
    """Ok/fail counts over the last ``window_s`` seconds, in time buckets.

    ``buckets`` slots of ``window_s / buckets`` seconds each (1 s buckets for windows of 10–60 s, at
    most 60 buckets for longer ones): a count leaves the window within one bucket's width of
    ``window_s`` after it was added. Times are any monotonic-enough clock in seconds."""

    __slots__ = ("window_s", "width", "_n", "_slot", "_ok", "_fail")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._n = min(60, max(10, math.ceil(window_s)))
        self.width = window_s / self._n
        self._slot = [-1] * self._n  # the absolute bucket number each slot currently holds
        self._ok = [0] * self._n
        self._fail = [0] * self._n

    def add(self, now: float, ok: int = 0, fail: int = 0) -> None:
        bucket = int(now // self.width)
        i = bucket % self._n
        if self._slot[i] != bucket:
            self._slot[i] = bucket
            self._ok[i] = 0
            self._fail[i] = 0
        self._ok[i] += ok
        self._fail[i] += fail

    def totals(self, now: float) -> tuple[int, int]:
        """(ok, fail) over the window ending at ``now``."""
        oldest = int(now // self.width) - self._n + 1
        ok = fail = 0
        for i in range(self._n):
            if self._slot[i] >= oldest:
                ok += self._ok[i]
                fail += self._fail[i]
        return ok, fail

    def reset(self) -> None:
        for i in range(self._n):
            self._slot[i] = -1
            self._ok[i] = 0
            self._fail[i] = 0


class LatencyEwma:
    """Exponentially weighted mean latency of ok calls, ``alpha`` per call.

    A report brings a batch (sum and count); it is folded in as ``count`` calls of the batch mean, so
    the estimate does not depend on how calls were grouped into reports. The value is forgotten after
    ``stale_after_s`` without an ok call: a target that was slow once and then never chosen again is
    ``None`` (unknown) rather than slow forever."""

    __slots__ = ("alpha", "stale_after_s", "value", "updated_at")

    def __init__(self, alpha: float = 0.1, stale_after_s: float = 300.0) -> None:
        self.alpha = alpha
        self.stale_after_s = stale_after_s
        self.value: float | None = None
        self.updated_at = 0.0

    def add(self, now: float, total_ms: float, count: int) -> None:
        if count <= 0:
            return
        mean = total_ms / count
        if self.value is None or now - self.updated_at > self.stale_after_s:
            self.value = mean
        else:
            weight = 1.0 - (1.0 - self.alpha) ** count
            self.value += weight * (mean - self.value)
        self.updated_at = now

    def get(self, now: float) -> float | None:
        if self.value is None or now - self.updated_at > self.stale_after_s:
            return None
        return self.value
