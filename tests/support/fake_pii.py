"""A small regex stand-in for the presidio analyzer in unit tests of the output filter (presidio has its
own tests): emails by regex, PERSON from a fixed list of names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from schemas.config import DEFAULT_ENTITIES, Guardrails
from stages.pii import PiiScanner
from workers.output_scanners import OutputScanners


@dataclass
class _Result:
    entity_type: str
    start: int
    end: int
    score: float


class FakeAnalyzer:
    """Emails by regex, PERSON from a fixed list of names."""

    PATTERNS: ClassVar[dict[str, re.Pattern[str]]] = {
        "EMAIL_ADDRESS": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
        "PERSON": re.compile(r"\b(?:Jane Doe|Ada Lovelace)\b"),
    }

    def analyze(self, text: str, language: str, *, entities: list[str] | None = None,
                score_threshold: float | None = None) -> list[Any]:
        return [_Result(e, m.start(), m.end(), 0.9) for e, rx in self.PATTERNS.items()
                if entities is None or e in entities for m in rx.finditer(text)]

    def get_supported_entities(self, language: str | None = None) -> list[str]:
        return ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PERSON",
                "LOCATION"]


def fake_scanner(profile: Guardrails) -> OutputScanners:
    """A profile's output scanners as ``build_scanner`` makes them, on the fake analyzer."""
    output, threshold = profile.output_filter, profile.redaction.score_threshold
    full = PiiScanner(FakeAnalyzer(), output.entity_types, threshold)
    if output.engine == "pattern":
        return OutputScanners(full)
    return OutputScanners(full, PiiScanner(FakeAnalyzer(), [e for e in output.entity_types if e in DEFAULT_ENTITIES],
                                           threshold))
