"""Retry timing: exponential backoff with full jitter, honouring ``Retry-After`` within caps."""

from __future__ import annotations

import random
from dataclasses import dataclass

from schemas.routing import RetryPolicy


@dataclass
class RetryBudget:
    """Tracks the backoff already spent on one request, across all its targets (each target may have
    its own policy, from its place in the routing tree)."""

    spent_s: float = 0.0

    def delay_before_retry(self, policy: RetryPolicy, retry_number: int, retry_after_s: float | None,
                           remaining_s: float, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before retry number ``retry_number`` (1-based) of the same target,
        or None when the caps forbid waiting (the caller then moves to the next target).

        ``Retry-After`` is honoured as a lower bound unless it exceeds ``max_retry_after_s``; the sum
        of every wait of the request stays under ``total_backoff_cap_ms`` and the deadline."""
        ceiling = min(policy.max_delay_ms, policy.base_delay_ms * (2 ** (retry_number - 1))) / 1000
        delay = (rng or random).uniform(0, ceiling)
        if retry_after_s is not None:
            if retry_after_s > policy.max_retry_after_s:
                return None
            delay = max(delay, retry_after_s)
        if self.spent_s + delay > policy.total_backoff_cap_ms / 1000 or delay >= remaining_s:
            return None
        self.spent_s += delay
        return delay
