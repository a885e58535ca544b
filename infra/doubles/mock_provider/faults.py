"""Fault state: scripted faults added through the admin API and the per-key `fail_times` counters."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from infra.doubles.mock_provider.directives import DirectiveError, Fault, parse_fault


@dataclass(slots=True)
class ScriptedFault:
    """A fault applied to requests without a directive of their own, optionally per model."""

    id: int
    spec: str
    fault: Fault
    model: str | None
    times: int | None
    rate: float | None
    seed: int | None
    rng: random.Random = field(repr=False)
    fired: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.spec,
            "model": self.model,
            "times": self.times,
            "rate": self.rate,
            "seed": self.seed,
            "fired": self.fired,
        }


def _optional_int(payload: dict[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DirectiveError(f"{name} must be a non-negative integer")
    return value


def _optional_rate(payload: dict[str, Any]) -> float | None:
    value = payload.get("rate")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise DirectiveError("rate must be a number between 0.0 and 1.0")
    return float(value)


class FaultBook:
    """Scripted faults in the order they were added, plus `fail_times` counters keyed by `key`."""

    def __init__(self) -> None:
        self.scripted: list[ScriptedFault] = []
        self._fail_counts: dict[str, int] = {}
        self._next_id = 1

    def add(self, payload: Any) -> ScriptedFault:
        """Add a fault from an admin `POST /_mock/faults` body; raises `DirectiveError` when invalid."""
        if not isinstance(payload, dict):
            raise DirectiveError("body must be a JSON object")
        spec = payload.get("fault")
        if not isinstance(spec, str):
            raise DirectiveError("'fault' must be a directive string")
        model = payload.get("model")
        if model is not None and not isinstance(model, str):
            raise DirectiveError("'model' must be a string")
        seed = _optional_int(payload, "seed")
        entry = ScriptedFault(
            id=self._next_id,
            spec=spec,
            fault=parse_fault(spec),
            model=model,
            times=_optional_int(payload, "times"),
            rate=_optional_rate(payload),
            seed=seed,
            rng=random.Random(seed),
        )
        self._next_id += 1
        self.scripted.append(entry)
        return entry

    def clear(self) -> None:
        """Drop scripted faults and reset every `fail_times` counter."""
        self.scripted.clear()
        self._fail_counts.clear()

    def listing(self) -> list[dict[str, Any]]:
        return [entry.as_json() for entry in self.scripted]

    def pick(self, model: str) -> Fault | None:
        """The first scripted fault that matches `model`, still has `times` left and wins its `rate` draw."""
        for entry in self.scripted:
            if entry.model is not None and entry.model != model:
                continue
            if entry.times is not None and entry.times <= 0:
                continue
            if entry.rate is not None and entry.rng.random() >= entry.rate:
                continue
            if entry.times is not None:
                entry.times -= 1
            entry.fired += 1
            return entry.fault
        return None

    def attempt(self, fault: Fault) -> Fault:
        """The fault as it applies to this attempt.

        Without `fail_times` that is the fault itself. With it, the first `fail_times` requests of each
        `key` fail (by `timeout`, `cut_after` or `status`; plain HTTP 500 when none is given) and later
        ones keep only the pacing and reply settings, so client retries can be tested.
        """
        if fault.fail_times is None:
            return fault
        seen = self._fail_counts.get(fault.key, 0)
        self._fail_counts[fault.key] = seen + 1
        if seen >= fault.fail_times:
            return replace(fault, status=None, timeout=False, cut_after=None)
        if fault.status is None and not fault.timeout and fault.cut_after is None:
            return replace(fault, status=500)
        return fault
