"""Running a profile's guardrails on a request and turning their results into verdicts.

``GuardrailSet`` is built once per (config version, profile) from the profile's specs; ``run`` checks
one subject with every guardrail of a phase, in config order, and returns what they decided: a
verdict per guardrail (passes included), the first ``block`` as a ``ContentBlocked`` error, and, for
``redact`` actions, the rewrites to apply to the answer.

Building validates the specs: an unknown guardrail, settings its class refuses, ``redact`` on a
guardrail that cannot, two guardrails with one name. ``SpecError`` lists every problem with its path
relative to the list (``1.settings.terms: ...``), so the config loader can name it in the file.

A guardrail whose ``check`` raises does not fail the request: its verdict is ``flag`` with the
finding ``error`` (and ``block`` if its action is ``block``: a broken blocking guardrail fails
closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas.errors import ConfigInvalid, ContentBlocked
from schemas.guardrails import GuardrailSpec, Outcome, Phase, Verdict
from stages.guardrails import registry
from stages.guardrails.base import Guardrail, Result, Subject

log = logging.getLogger("gateway.guardrails")


class SpecError(ConfigInvalid):
    """Guardrail specs that cannot be built: ``problems`` are (path, message), the path relative to
    the spec (or, from ``GuardrailSet``, to the list)."""

    default_code = "guardrail_spec_invalid"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" if path else message for path, message in problems))

    def under(self, prefix: str) -> SpecError:
        return SpecError([(f"{prefix}.{path}" if path else prefix, message) for path, message in self.problems])


@dataclass(frozen=True, slots=True)
class Built:
    spec: GuardrailSpec
    guardrail: Guardrail


def build(spec: GuardrailSpec) -> Built:
    """The guardrail a spec names, with its settings validated (``SpecError`` naming the problem)."""
    try:
        cls = registry.load(spec.use)
    except registry.UnknownGuardrail as exc:
        raise SpecError([("use", str(exc))]) from None
    if spec.action == "redact" and not cls.supports_redact:
        raise SpecError([("action", f"guardrail {spec.use!r} cannot redact; use action flag or block")])
    if spec.action == "redact" and cls.phase != "output":
        raise SpecError([("action", f"guardrail {spec.use!r} checks {cls.phase}; redact applies to answers only")])
    try:
        settings = cls.Settings.model_validate(spec.settings)
    except ValidationError as exc:
        raise SpecError([
            (".".join(["settings", *(str(part) for part in err["loc"])]),
             str(err["msg"]).removeprefix("Value error, "))
            for err in exc.errors()]) from None
    return Built(spec, cls(settings))


@dataclass(slots=True)
class RunOutcome:
    verdicts: list[Verdict] = field(default_factory=list)
    blocked: ContentBlocked | None = None
    rewrites: list[Callable[[str], str]] = field(default_factory=list)

    @property
    def triggered(self) -> list[str]:
        """The names of the guardrails that did not pass."""
        return [v.guardrail for v in self.verdicts if v.outcome != "pass"]


_FAILED = Result(findings={"error": 1})


class GuardrailSet:
    def __init__(self, specs: Sequence[GuardrailSpec]) -> None:
        built: list[Built] = []
        problems: list[tuple[str, str]] = []
        names: set[str] = set()
        for i, spec in enumerate(specs):
            if spec.name in names:
                problems.append((f"{i}.name", f"two guardrails are named {spec.name!r}; give one a 'name'"))
            names.add(spec.name)
            try:
                built.append(build(spec))
            except SpecError as exc:
                problems.extend(exc.under(str(i)).problems)
        if problems:
            raise SpecError(problems)
        self.input = [b for b in built if b.guardrail.phase == "input"]
        self.output = [b for b in built if b.guardrail.phase == "output"]

    def of(self, phase: Phase) -> list[Built]:
        return self.input if phase == "input" else self.output

    def run(self, subject: Subject) -> RunOutcome:
        outcome = RunOutcome()
        for item in self.of(subject.phase):
            spec = item.spec
            started = time.perf_counter()
            try:
                result = item.guardrail.check(subject)
            except Exception:  # noqa: BLE001 - one broken guardrail must not fail every request
                log.exception("guardrail %s (%s) failed", spec.name, spec.use)
                result = _FAILED
            failed = result is _FAILED
            triggered = result.score >= spec.threshold and result.score > 0
            verdict: Outcome = spec.action if triggered else "pass"
            if failed:
                verdict = "block" if spec.action == "block" else "flag"
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
