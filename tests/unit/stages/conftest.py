"""Fixtures for the PII stage tests: one presidio analyzer per session (building one takes ≈1.6 s)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import DEFAULT_ENTITIES, CustomRecognizer
from stages.pii import PiiScanner

EMPLOYEE_ID = CustomRecognizer(
    entity="EMPLOYEE_ID", pattern=r"\bEMP-\d{6}\b", score=0.8, context=["employee"]
)


@pytest.fixture(scope="session")
def analyzer() -> Any:
    from infra.presidio import build_analyzer

    return build_analyzer([EMPLOYEE_ID])


@pytest.fixture(scope="session")
def scanner(analyzer: Any) -> PiiScanner:
    return PiiScanner(analyzer, DEFAULT_ENTITIES, 0.4)
