"""Retry timing: full-jitter exponential backoff, Retry-After as a lower bound, caps, deadline."""

from __future__ import annotations

import random

import pytest

from schemas.routing import RetryPolicy
from stages.retry import RetryBudget

SEEDS = range(25)
FAR = 1_000.0  # a deadline that never binds


def policy(**overrides: float) -> RetryPolicy:
    values: dict[str, float] = {
        "base_delay_ms": 100, "max_delay_ms": 2_000, "max_retry_after_s": 10, "total_backoff_cap_ms": 1e9,
    }
    values.update(overrides)
    return RetryPolicy(**values)


def ceiling_s(retry_number: int, base_ms: float = 100, max_ms: float = 2_000) -> float:
    return min(max_ms, base_ms * 2 ** (retry_number - 1)) / 1000


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("retry_number", [1, 2, 3, 4, 5, 6, 10])
def test_delay_is_full_jitter_under_exponential_ceiling(seed: int, retry_number: int) -> None:
    delay = RetryBudget().delay_before_retry(policy(), retry_number, None, FAR, random.Random(seed))
    ceiling = ceiling_s(retry_number)
    assert delay is not None
    assert 0 <= delay <= ceiling
    assert delay == random.Random(seed).uniform(0, ceiling)


def test_ceiling_doubles_then_caps() -> None:
    assert [ceiling_s(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    # The largest delay observed over many seeds approaches each ceiling and never exceeds it.
    for n in range(1, 8):
        delays = [RetryBudget().delay_before_retry(policy(), n, None, FAR, random.Random(s)) for s in range(300)]
        assert all(d is not None for d in delays)
        top = max(d for d in delays if d is not None)
        assert 0.9 * ceiling_s(n) < top <= ceiling_s(n)


def test_jitter_spans_the_whole_range() -> None:
    delays = [RetryBudget().delay_before_retry(policy(), 4, None, FAR, random.Random(s)) for s in range(300)]
    ceiling = ceiling_s(4)
    assert min(d for d in delays if d is not None) < 0.1 * ceiling  # full jitter, not "equal jitter"
    assert len({d for d in delays}) > 250


def test_zero_base_delay_means_no_wait() -> None:
    assert RetryBudget().delay_before_retry(policy(base_delay_ms=0), 3, None, FAR, random.Random(1)) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_retry_after_is_a_lower_bound(seed: int) -> None:
    pol = policy()
    budget = RetryBudget()
    delay = budget.delay_before_retry(pol, 1, 3.0, FAR, random.Random(seed))  # ceiling 0.1 s < 3 s
    assert delay == 3.0
    assert budget.spent_s == 3.0


@pytest.mark.parametrize("seed", SEEDS)
def test_small_retry_after_keeps_jitter_when_larger(seed: int) -> None:
    jitter = random.Random(seed).uniform(0, ceiling_s(6))
    delay = RetryBudget().delay_before_retry(policy(), 6, 0.05, FAR, random.Random(seed))
    assert delay == max(jitter, 0.05)


def test_retry_after_above_max_is_refused() -> None:
    pol = policy(max_retry_after_s=5)
    budget = RetryBudget()
    assert budget.delay_before_retry(pol, 1, 5.01, FAR, random.Random(0)) is None
    assert budget.spent_s == 0.0
    assert budget.delay_before_retry(pol, 1, 5.0, FAR, random.Random(0)) == 5.0


def test_cumulative_cap() -> None:
    pol = policy(base_delay_ms=0, total_backoff_cap_ms=1_000)
    budget = RetryBudget()
    rng = random.Random(0)
    assert budget.delay_before_retry(pol, 1, 0.4, FAR, rng) == 0.4
    assert budget.delay_before_retry(pol, 2, 0.4, FAR, rng) == 0.4
    assert budget.delay_before_retry(pol, 3, 0.4, FAR, rng) is None  # 1.2 s > 1.0 s
    assert budget.spent_s == pytest.approx(0.8)
    assert budget.delay_before_retry(pol, 1, 0.2, FAR, rng) == 0.2  # exactly reaches the cap: allowed
    assert budget.spent_s == pytest.approx(1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_cap_is_never_exceeded_across_targets(seed: int) -> None:
    rng = random.Random(seed)
    pol = policy(total_backoff_cap_ms=3_000)
    budget = RetryBudget()
    total = 0.0
    for _target in range(5):
        for n in range(1, 6):
            retry_after = rng.choice([None, None, 0.3, 1.0])
            delay = budget.delay_before_retry(pol, n, retry_after, FAR, rng)
            if delay is not None:
                total += delay
    assert total <= 3.0
    assert budget.spent_s == pytest.approx(total)


def test_never_waits_past_the_deadline() -> None:
    pol = policy()
    budget = RetryBudget()
    assert budget.delay_before_retry(pol, 1, 2.0, 1.5, random.Random(0)) is None
    assert budget.delay_before_retry(pol, 1, 2.0, 2.0, random.Random(0)) is None  # would end exactly at it
    assert budget.spent_s == 0.0
    assert budget.delay_before_retry(pol, 1, 2.0, 2.5, random.Random(0)) == 2.0


@pytest.mark.parametrize("seed", SEEDS)
def test_delay_always_below_remaining(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        remaining = rng.uniform(0, 3)
        retry_after = rng.choice([None, rng.uniform(0, 4)])
        delay = RetryBudget().delay_before_retry(policy(), rng.randint(1, 8), retry_after, remaining, rng)
        assert delay is None or 0 <= delay < remaining
        if delay is not None and retry_after is not None:
            assert delay >= retry_after


def test_no_time_left() -> None:
    assert RetryBudget().delay_before_retry(policy(), 1, None, 0.0, random.Random(0)) is None
    assert RetryBudget().delay_before_retry(policy(), 1, None, -1.0, random.Random(0)) is None


def test_default_rng_is_used_without_one() -> None:
    delay = RetryBudget().delay_before_retry(policy(), 2, None, FAR)
    assert delay is not None and 0 <= delay <= 0.2
