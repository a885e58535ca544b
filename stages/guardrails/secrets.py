"""``secrets``: credentials pasted into a prompt (input phase).

Well-known token formats (AWS access key ids, private key blocks, GitHub/GitLab/Slack/Stripe/OpenAI/
Anthropic/Google keys, JWTs) and generic ``password=`` / ``api_key: ...`` assignments. Each pattern
runs only when its fixed prefix is in the text (a substring check), so a prompt without one costs a
few microseconds. Findings are ``{secret type: count}``; the value is never kept. Redacting secrets
on input is not wired: configure ``flag`` or ``block``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.guardrails import Phase
from stages.guardrails.base import PASS, Guardrail, Result, Subject
from stages.guardrails.texts import Source, default_roles, request_texts


@dataclass(frozen=True, slots=True)
class SecretType:
    name: str
    score: float
    pattern: re.Pattern[str]
    prefixes: tuple[str, ...]
    """Substrings one of which must be in the text (of its lowercased form when ``lower``)."""
    lower: bool = False


_PLACEHOLDER = re.compile(
    r"^(?:<[^>]*>|\$\{?[\w.]+\}?|\{\{.*\}\}|%\(?\w+\)?s?|x{3,}|\*{3,}|\.{3,}|-+|env:\w+|none|null|nil|true|false|"
    r"changeme|your[-_\w]*|example[-_\w]*|placeholder|redacted|secret|password|string|str|dummy|test|"
    r"(?:os\.)?(?:getenv|environ)\b.*|process\.env\b.*|settings\.\w+.*|config\.\w+.*|[\w.]+\(.*)$",
    re.IGNORECASE,
)

TYPES: tuple[SecretType, ...] = (
    SecretType("aws_access_key_id", 1.0, re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
               ("AKIA", "ASIA", "ABIA", "ACCA")),
    SecretType("aws_secret_access_key", 1.0, re.compile(
        r"aws.{0,20}?secret.{0,20}?[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])", re.IGNORECASE),
        ("secret",), lower=True),
    SecretType("private_key", 1.0, re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
               ("-----BEGIN",)),
    SecretType("github_token", 1.0,
               re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"),
               ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    SecretType("gitlab_token", 1.0, re.compile(r"\bgl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_-]{20,}"),
               ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "gloas-")),
    SecretType("slack_token", 1.0, re.compile(
        r"\bxox[abposre]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        ("xox", "hooks.slack.com")),
    SecretType("stripe_key", 1.0, re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}"),
               ("sk_live_", "sk_test_", "rk_live_", "rk_test_")),
    SecretType("anthropic_key", 1.0, re.compile(r"\bsk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{20,}"),
               ("sk-ant-",)),
    SecretType("openai_key", 1.0, re.compile(
        r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}(?:T3BlbkFJ[A-Za-z0-9_-]{20,})?"),
        ("sk-",)),
    SecretType("google_api_key", 1.0, re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), ("AIza",)),
    SecretType("jwt", 0.9, re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"), ("eyJ",)),
)

_ASSIGNMENT = re.compile(
    r"\b(?:password|passwd|pwd|passphrase|secret(?:[_-]?key)?|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|"
    r"client[_-]?secret|private[_-]?key|bearer[_-]?token|db[_-]?pass(?:word)?)[\"']?\s*[:=]\s*[\"'`]?"
    r"([^\s\"'`,;]{6,})",
    re.IGNORECASE,
)
_ASSIGNMENT_WORDS = ("pass", "pwd", "secret", "key", "token")
GENERIC = "generic_assignment"
GENERIC_SCORE = 0.7


class SecretsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    types: list[str] | None = Field(default=None, description="secret types to look for; default: all")
    generic_assignments: bool = Field(default=True, description="also `password=...`, `api_key: ...` lines")
    scan_roles: list[Source] = Field(
        default_factory=default_roles, min_length=1)

    @model_validator(mode="after")
    def _types_known(self) -> SecretsSettings:
        known = {t.name for t in TYPES}
        unknown = sorted(set(self.types or []) - known)
        if unknown:
            raise ValueError(f"types: unknown secret types {unknown}; known: {sorted(known)}")
        return self


def _real_value(value: str) -> bool:
    """A generic assignment's value, unless it is a placeholder, a reference or a repeated character."""
    value = value.rstrip(".)")
    return len(value) >= 6 and len(set(value)) > 2 and not _PLACEHOLDER.match(value)


class Secrets(Guardrail):
    phase: ClassVar[Phase] = "input"
    Settings: ClassVar[type[BaseModel]] = SecretsSettings

    def __init__(self, settings: BaseModel) -> None:
        super().__init__(settings)
        assert isinstance(settings, SecretsSettings)
        chosen = set(settings.types) if settings.types is not None else None
        self.types = tuple(t for t in TYPES if chosen is None or t.name in chosen)
        self.generic = settings.generic_assignments
        self.roles = frozenset(settings.scan_roles)

    def find(self, text: str) -> dict[str, int]:
        """{secret type: count} in one text."""
        found: dict[str, int] = {}
        lower = text.lower() if self.generic or any(t.lower for t in self.types) else text
        for kind in self.types:
            haystack = lower if kind.lower else text
            if any(p in haystack for p in kind.prefixes):
                count = len(kind.pattern.findall(text))
                if count:
                    found[kind.name] = count
        if self.generic and any(w in lower for w in _ASSIGNMENT_WORDS):
            count = sum(1 for m in _ASSIGNMENT.finditer(text) if _real_value(m.group(1)))
            if count:
                found[GENERIC] = count
        return found

    def check(self, subject: Subject) -> Result:
        findings: dict[str, int] = {}
        for _, text in request_texts(subject.request, self.roles):
            for kind, count in self.find(text).items():
                findings[kind] = findings.get(kind, 0) + count
        if not findings:
            return PASS
        scores = {t.name: t.score for t in self.types}
        return Result(score=max(scores.get(k, GENERIC_SCORE) for k in findings), findings=findings)
