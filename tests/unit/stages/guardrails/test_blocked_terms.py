"""Blocked words, phrases and patterns: whole words, any case, findings by index or name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stages.guardrails.blocked_terms import BlockedTerms, BlockedTermsSettings
from tests.unit.stages.guardrails.conftest import user


def guard(**settings: Any) -> BlockedTerms:
    return BlockedTerms(BlockedTermsSettings.model_validate(settings))


def test_terms_match_whole_words_in_any_case() -> None:
    g = guard(terms=["project falcon", "acme", "c++"])
    result = g.check(user("Tell me about Project\n  FALCON and ACME's plans; acmeville is fine. I like C++."))
    assert result.findings == {"term.0": 1, "term.1": 1, "term.2": 1}
    assert result.score == 1.0
    assert g.check(user("acmeville and falconry")).findings == {}


def test_non_ascii_text_and_terms_without_a_leading_word() -> None:
    g = guard(terms=["straße", "acme", "++"])
    result = g.check(user("Die STRASSE? Nein: Straße. acme\u2019s plan, i++ ++"))
    assert result.findings == {"term.0": 1, "term.1": 1, "term.2": 1}
    assert list(g.check(user("++ acme straße")).findings) == ["term.0", "term.1", "term.2"]


def test_patterns_by_name_and_counts() -> None:
    g = guard(patterns={"ticket": r"\bJIRA-\d+\b"})
    assert g.check(user("see jira-12 and JIRA-13")).findings == {"pattern.ticket": 2}
    strict = guard(patterns={"ticket": r"\bJIRA-\d+\b"}, case_sensitive_patterns=True)
    assert strict.check(user("see jira-12 and JIRA-13")).findings == {"pattern.ticket": 1}


def test_findings_never_name_the_text() -> None:
    result = guard(terms=["secretproject"]).check(user("secretproject"))
    assert "secretproject" not in str(result.findings)


def test_nothing_matched_passes() -> None:
    result = guard(terms=["acme"]).check(user("hello"))
    assert result.score == 0 and result.findings == {}


@pytest.mark.parametrize(("settings", "fragment"), [
    ({}, "give 'terms', 'patterns', or both"),
    ({"terms": ["ok", "  "]}, r"terms \[1\] are blank"),
    ({"patterns": {"bad": "("}}, "not a valid regex"),
    ({"patterns": {"no spaces": "x"}}, "use letters"),
])
def test_bad_settings_are_refused(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        BlockedTermsSettings.model_validate(settings)
