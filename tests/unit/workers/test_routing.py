"""The routing worker's breaker step: open targets leave the plan, a half-open probe goes first."""

from __future__ import annotations

import pytest

from schemas.errors import ServiceUnavailable
from schemas.routing import PlannedTarget
from stages.routing import Plan
from workers.health import Admission
from workers.routing import apply_breakers


class Breakers:
    def __init__(self, states: dict[str, str], retry_after: float = 4.0) -> None:
        self.states = states
        self.retry_after = retry_after
        self.claimed: list[str] = []

    async def admit(self, target_id: str) -> Admission:
        state = self.states.get(target_id, "closed")
        if state == "closed":
            return Admission("allow")
        if state == "half_open":
            self.claimed.append(target_id)
            return Admission("probe")
        return Admission("skip", self.retry_after)

    def state(self, target_id: str) -> str:
        return self.states.get(target_id, "closed")


def plan(*names: str) -> Plan:
    return Plan([PlannedTarget(provider="p", model=n, path=f"route.children.{i}") for i, n in enumerate(names)])


async def test_closed_breakers_keep_the_plan() -> None:
    kept, skipped = await apply_breakers(plan("a", "b"), Breakers({}), "m")  # type: ignore[arg-type]
    assert [t.model for t in kept] == ["a", "b"] and skipped == []


async def test_open_targets_are_skipped() -> None:
    kept, skipped = await apply_breakers(plan("a", "b", "c"), Breakers({"p/a": "open"}), "m")  # type: ignore[arg-type]
    assert [t.model for t in kept] == ["b", "c"] and skipped == ["p/a"]


async def test_a_half_open_target_is_probed_first_with_one_attempt_and_only_one_probe_per_request() -> None:
    breakers = Breakers({"p/b": "half_open", "p/c": "half_open"})
    kept, skipped = await apply_breakers(plan("a", "b", "c"), breakers, "m")  # type: ignore[arg-type]
    assert [t.model for t in kept] == ["b", "a"]
    assert kept[0].probe and kept[0].retry.attempts_per_target == 1 and not kept[1].probe
    assert breakers.claimed == ["p/b"] and skipped == ["p/c"]


async def test_every_target_open_fails_fast_with_retry_after() -> None:
    with pytest.raises(ServiceUnavailable) as raised:
        await apply_breakers(plan("a", "b"), Breakers({"p/a": "open", "p/b": "open"}, 2.5), "m")  # type: ignore[arg-type]
    error = raised.value
    assert (error.status, error.code, error.retry_after_s) == (503, "circuit_open", 2.5)
    assert "p/a" in error.message and "p/b" in error.message
