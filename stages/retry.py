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


BATCH_BACKOFF_FIRST_S = 1.0
BATCH_BACKOFF_MAX_S = 60.0
BATCH_RETRY_AFTER_MAX_S = 300.0


def batch_backoff_s(round_number: int, retry_after_s: float | None, rng: random.Random | None = None) -> float:
    """How long a batch line waits before trying its whole plan again after every target answered 429
    (round ``round_number``, 1-based): exponential with full jitter from 1 s, capped at 60 s, and at least
    the provider's ``Retry-After`` (up to 5 minutes). An interactive caller gets the 429 at once instead:
    it can decide; a batch line has hours, so it waits rather than fail."""
    ceiling = min(BATCH_BACKOFF_MAX_S, BATCH_BACKOFF_FIRST_S * 2 ** (round_number - 1))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, BATCH_RETRY_AFTER_MAX_S))
    return delay
