"""Running a profile's guardrails on a request and turning their results into verdicts.

``GuardrailSet`` is built once per (config version, profile) from the profile's specs; ``run`` checks
one subject with every guardrail of a phase, in config order, and returns what they decided: a
verdict per guardrail (passes included), the first ``block`` as a ``ContentBlocked`` error, and, for
``redact`` actions, the rewrites to apply to the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas.errors import ContentBlocked
from schemas.guardrails import GuardrailSpec, Outcome, Phase, Verdict
from stages.guardrails import registry
from stages.guardrails.base import Guardrail, Subject


@dataclass(frozen=True, slots=True)
class Built:
    spec: GuardrailSpec
    guardrail: Guardrail


def build(spec: GuardrailSpec) -> Built:
    """The guardrail a spec names, with its settings validated (``ValueError`` naming the problem)."""
    cls = registry.load(spec.use)
    if spec.action == "redact" and not cls.supports_redact:
        raise ValueError(f"guardrail {spec.use!r} cannot redact; use action flag or block")
    return Built(spec, cls(cls.Settings.model_validate(spec.settings)))


@dataclass(slots=True)
class RunOutcome:
    verdicts: list[Verdict] = field(default_factory=list)
    blocked: ContentBlocked | None = None
    rewrites: list[Callable[[str], str]] = field(default_factory=list)


class GuardrailSet:
    def __init__(self, specs: Sequence[GuardrailSpec]) -> None:
        built = [build(spec) for spec in specs]
        self.input = [b for b in built if b.guardrail.phase == "input"]
        self.output = [b for b in built if b.guardrail.phase == "output"]

    def of(self, phase: Phase) -> list[Built]:
        return self.input if phase == "input" else self.output

    def run(self, subject: Subject) -> RunOutcome:
        outcome = RunOutcome()
        for item in self.of(subject.phase):
            spec = item.spec
            started = time.perf_counter()
            result = item.guardrail.check(subject)
            triggered = result.score >= spec.threshold and result.score > 0
            verdict: Outcome = spec.action if triggered else "pass"
            if verdict == "redact":
                if result.redact is None:
                    verdict = "flag"
                else:
                    outcome.rewrites.append(result.redact)
            if verdict == "block" and outcome.blocked is None:
                outcome.blocked = ContentBlocked(
                    f"The {'request' if subject.phase == 'input' else 'response'} was blocked by the "
                    f"{spec.name} guardrail.",
                    code="guardrail_blocked",
                )
            outcome.verdicts.append(Verdict(
                guardrail=spec.name, kind=spec.use, phase=subject.phase, outcome=verdict,
                score=round(result.score, 4), findings=dict(result.findings),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            ))
        return outcome
