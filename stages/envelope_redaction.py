"""The redaction stage's step on one envelope: its profile's operators applied to the body, with the ``pii`` verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas.config import Guardrails
from schemas.envelope import Envelope
from schemas.guardrails import Verdict
from stages.pii import PiiScanner
from stages.redaction import PiiBlocked, RedactionResult, redact_embedding_input, redact_request

GUARDRAIL = "pii"


@dataclass(frozen=True, slots=True)
class ProfileRedactor:
    """What one profile's redaction runs with: its scanner (None when redaction is off) and hash salt."""

    scanner: PiiScanner | None
    salt: bytes
    engine: str = "pattern"

    @property
    def offload(self) -> bool:
        """Run off the event loop (NER costs milliseconds of CPU per text)."""
        return self.scanner is not None and self.engine == "ner"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The redaction of one request: ``result`` (None when blocked or off), ``blocked``, ``verdict``
    (None when redaction is off)."""

    result: RedactionResult | None
    blocked: PiiBlocked | None
    verdict: Verdict | None


def redact_envelope(envelope: Envelope, guardrails: Guardrails, redactor: ProfileRedactor,
                    tenant: str) -> Outcome:
    """The pure part of the stage: apply the profile's operators to the envelope's body."""
    if redactor.scanner is None:
        return Outcome(None, None, None)
    started = time.perf_counter()
    redact = redact_embedding_input if envelope.endpoint == "embeddings" else redact_request
    try:
        result = redact(envelope.body, redactor.scanner, guardrails.redaction, tenant=tenant, salt=redactor.salt)
    except PiiBlocked as blocked:
        verdict = Verdict(guardrail=GUARDRAIL, kind="pii_redaction", phase="input", outcome="block",
                          score=blocked.score, findings=blocked.counts,
                          duration_ms=(time.perf_counter() - started) * 1000)
        return Outcome(None, blocked, verdict)
    verdict = Verdict(guardrail=GUARDRAIL, kind="pii_redaction", phase="input",
                      outcome="redact" if result.counts else "pass", score=result.score,
                      findings=result.counts, duration_ms=(time.perf_counter() - started) * 1000)
    return Outcome(result, None, verdict)
