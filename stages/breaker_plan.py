"""The circuit breakers applied to a routing plan: open targets dropped, a half-open one probed first."""

from __future__ import annotations

from typing import Literal, Protocol

from schemas.errors import ServiceUnavailable
from schemas.routing import PlannedTarget
from stages.routing import Plan


class Admission(Protocol):
    """A breaker's answer for one request (``workers.health.Admission``)."""

    @property
    def decision(self) -> Literal["allow", "probe", "skip"]: ...

    @property
    def retry_after_s(self) -> float | None: ...


class Breakers(Protocol):
    """The shared breaker states (``workers.health.HealthMonitor``)."""

    def state(self, target_id: str) -> str: ...

    async def admit(self, target_id: str) -> Admission:
        """``allow``; ``probe``: this request took a half-open probe slot; ``skip``: the breaker is open."""
        ...


async def apply_breakers(plan: Plan, monitor: Breakers, model: str) -> tuple[list[PlannedTarget], list[str]]:
    """The plan without the targets whose breaker is open; a half-open target this request may probe
    goes first (its outcome closes or reopens the breaker; the rest of the plan still serves)."""
    kept: list[PlannedTarget] = []
    skipped: list[str] = []
    probe: PlannedTarget | None = None
    retry_after: list[float] = []
    for target in plan.targets:
        if probe is not None and monitor.state(target.id) != "closed":
            skipped.append(target.id)  # one probe per request
            continue
        admission = await monitor.admit(target.id)
        if admission.decision == "allow":
            kept.append(target)
        elif admission.decision == "probe":
            # one attempt: its outcome decides the breaker; the rest of the plan serves the caller
            probe = target.model_copy(update={
                "probe": True, "retry": target.retry.model_copy(update={"attempts_per_target": 1})})
        else:
            skipped.append(target.id)
            if admission.retry_after_s is not None:
                retry_after.append(admission.retry_after_s)
    if probe is not None:
        kept.insert(0, probe)
    if not kept:
        raise ServiceUnavailable(
            f"Every target of model '{model}' is failing and its circuit breaker is open "
            f"({', '.join(skipped)}); retry after the cool-down.",
            code="circuit_open", retry_after_s=round(min(retry_after), 3) if retry_after else None)
    return kept, skipped
