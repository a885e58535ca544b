"""The circuit breakers applied to a plan, with a fake breaker store: open targets leave it, a half-open
one is probed first with one attempt, one probe per request, and a plan left empty fails fast (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from schemas.errors import ServiceUnavailable
from schemas.routing import PlannedTarget, RetryPolicy
from stages.breaker_plan import apply_breakers
from stages.routing import Plan


@dataclass(frozen=True)
class Answer:
    decision: Literal["allow", "probe", "skip"]
    retry_after_s: float | None = None


@dataclass
class FakeBreakers:
    """Breaker states by target id (closed when absent) and what ``admit`` answers for the others."""

    states: dict[str, str] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    admitted: list[str] = field(default_factory=list)

    def state(self, target_id: str) -> str:
        return self.states.get(target_id, "closed")

    async def admit(self, target_id: str) -> Answer:
        self.admitted.append(target_id)
        answer = self.answers.get(target_id, Answer("allow"))
        if answer.decision == "probe":
            self.states[target_id] = "half_open"  # the probe slot is taken
        return answer


def plan(*names: str) -> Plan:
    retry = RetryPolicy(attempts_per_target=3)
    return Plan([PlannedTarget(provider="p", model=n, path=f"route.children.{i}", retry=retry)
                 for i, n in enumerate(names)])


def opened(*names: str, retry_after_s: float | None = 30.0) -> FakeBreakers:
    return FakeBreakers(states={f"p/{n}": "open" for n in names},
                        answers={f"p/{n}": Answer("skip", retry_after_s) for n in names})


async def test_closed_breakers_keep_the_plan() -> None:
    original = plan("a", "b")
    kept, skipped = await apply_breakers(original, FakeBreakers(), "m")
    assert kept == original.targets and skipped == []


async def test_open_targets_are_skipped() -> None:
    kept, skipped = await apply_breakers(plan("a", "b", "c"), opened("a", "c"), "m")
    assert [t.model for t in kept] == ["b"] and skipped == ["p/a", "p/c"]


async def test_a_half_open_target_is_probed_first_with_one_attempt_and_one_probe_per_request() -> None:
    breakers = FakeBreakers(states={"p/b": "open", "p/c": "open"},
                            answers={"p/b": Answer("probe"), "p/c": Answer("probe")})
    kept, skipped = await apply_breakers(plan("a", "b", "c", "d"), breakers, "m")
    assert [t.model for t in kept] == ["b", "a", "d"]
    assert kept[0].probe and kept[0].retry.attempts_per_target == 1
    assert not any(t.probe for t in kept[1:]) and kept[1].retry.attempts_per_target == 3
    assert skipped == ["p/c"]
    assert breakers.admitted == ["p/a", "p/b", "p/d"]  # once a probe is taken, a breaker not closed is not asked


async def test_every_target_open_fails_fast_with_the_soonest_retry_after() -> None:
    breakers = opened("a", "b")
    breakers.answers["p/b"] = Answer("skip", 12.34567)
    with pytest.raises(ServiceUnavailable) as raised:
        await apply_breakers(plan("a", "b"), breakers, "m")
    error = raised.value
    assert (error.status_code, error.code, error.retry_after_s) == (503, "circuit_open", 12.346)
    assert "'m'" in error.message and "p/a" in error.message and "p/b" in error.message


async def test_every_target_open_while_probes_run_has_no_retry_after() -> None:
    with pytest.raises(ServiceUnavailable) as raised:
        await apply_breakers(plan("a"), opened("a", retry_after_s=None), "m")
    assert raised.value.retry_after_s is None
