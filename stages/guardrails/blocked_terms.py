"""``blocked_terms``: words, phrases and patterns a deployment does not want in prompts (input phase).

``terms`` match case-insensitively as whole words or phrases (any whitespace between a phrase's
words); ``patterns`` are named regexes. Terms are indexed by their first word: a text's words are
intersected with that index (one set operation, whatever the number of terms) and only the terms
whose first word is present run their regex, so a clean prompt costs a tokenisation. Findings name
what matched by position or name (``term.3``, ``pattern.ssn_like``), never the text; the score is
1.0 when anything matched.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.guardrails import Phase
from stages.guardrails.base import PASS, Guardrail, Result, Subject
from stages.guardrails.texts import Source, default_roles, request_texts


class BlockedTermsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    terms: list[str] = Field(default_factory=list, description="case-insensitive whole words or phrases")
    patterns: dict[str, str] = Field(default_factory=dict, description="name -> regex")
    case_sensitive_patterns: bool = False
    scan_roles: list[Source] = Field(
        default_factory=default_roles, min_length=1)

    @field_validator("terms")
    @classmethod
    def _terms_not_blank(cls, value: list[str]) -> list[str]:
        blank = [i for i, term in enumerate(value) if not term.strip()]
        if blank:
            raise ValueError(f"terms {blank} are blank")
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"pattern name {name!r}: use letters, digits, '_', '.', '-'")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _something_to_find(self) -> BlockedTermsSettings:
        if not self.terms and not self.patterns:
            raise ValueError("give 'terms', 'patterns', or both")
        return self


_WORD = re.compile(r"\w+")
_NOT_WORD = bytes(c for c in range(128) if not (chr(c).isalnum() or c == ord("_")))
_SPLIT = bytes.maketrans(_NOT_WORD, b" " * len(_NOT_WORD))


def _term_regex(term: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(word) for word in term.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def words_of(lowered: str) -> set[bytes]:
    """The ``\\w+`` words of lowercased text, as UTF-8 (a byte translation for ASCII text)."""
    if lowered.isascii():
        return set(lowered.encode().translate(_SPLIT).split())
    return {w.encode() for w in _WORD.findall(lowered)}


class BlockedTerms(Guardrail):
    phase: ClassVar[Phase] = "input"
    Settings: ClassVar[type[BaseModel]] = BlockedTermsSettings

    def __init__(self, settings: BaseModel) -> None:
        super().__init__(settings)
        assert isinstance(settings, BlockedTermsSettings)
        self.roles = frozenset(settings.scan_roles)
        # a whole-word match of a term has the term's first word among the text's words
        self.by_word: dict[bytes, list[tuple[str, re.Pattern[str]]]] = {}
        self.unindexed: list[tuple[str, re.Pattern[str]]] = []
        for i, term in enumerate(settings.terms):
            entry = (f"term.{i}", _term_regex(term))
            first = _WORD.search(term.lower())
            if first is None:
                self.unindexed.append(entry)
            else:
                self.by_word.setdefault(first.group().encode(), []).append(entry)
        self.keys = frozenset(self.by_word)
        flags = 0 if settings.case_sensitive_patterns else re.IGNORECASE
        self.patterns = tuple((name, re.compile(p, flags)) for name, p in settings.patterns.items())

    def find(self, text: str) -> dict[str, int]:
        found: dict[str, int] = {}
        candidates = list(self.unindexed)
        if self.keys:
            for word in words_of(text.lower()) & self.keys:
                candidates.extend(self.by_word[word])
        for key, pattern in sorted(candidates, key=lambda entry: int(entry[0][5:])):
            count = len(pattern.findall(text))
            if count:
                found[key] = count
        for name, pattern in self.patterns:
            count = sum(1 for _ in pattern.finditer(text))
            if count:
                found[f"pattern.{name}"] = count
        return found

    def check(self, subject: Subject) -> Result:
        findings: dict[str, int] = {}
        for _, text in request_texts(subject.request, self.roles):
            for key, count in self.find(text).items():
                findings[key] = findings.get(key, 0) + count
        return Result(score=1.0, findings=findings) if findings else PASS
