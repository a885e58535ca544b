"""The guardrail sections of the config: PII redaction (``redaction``), the output filter
(``output_filter``), the guardrail list (``guardrails``) and named profiles of all three
(``guardrail_profiles``), resolved per request into ``Guardrails``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.guardrails import GuardrailSpec
from schemas.secret_refs import REDACTION_SECRET


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


PiiEngine = Literal["pattern", "ner"]
"""``pattern``: presidio's regex/checksum recognizers only (≈ 0.1–4 ms a prompt); ``ner``: the same plus
spaCy ``en_core_web_sm`` named entities (PERSON, LOCATION, ...; ≈ 10–25 ms a prompt)."""

Operator = Literal["placeholder", "mask", "hash", "block"]
"""What redaction does with a value: ``placeholder`` ``<EMAIL_ADDRESS_1>`` (restored in the answer),
``mask`` ``****1111`` (last characters kept), ``hash`` ``<EMAIL_ADDRESS:9f86d081884c>`` (salted HMAC,
stable per tenant, never restored), ``block`` (the request is refused: 400 ``pii_blocked``)."""

DEFAULT_ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]
"""What the pattern engine finds by default (and the only built-ins it can find)."""
NER_DEFAULT_ENTITIES = ["PERSON", "LOCATION"]
"""What the NER engine adds by default."""
NER_ENTITIES = ["PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"]
"""Every entity the NER engine can find besides the pattern ones."""


def engine_entities(engine: PiiEngine) -> list[str]:
    """Every built-in entity ``engine`` can find."""
    return DEFAULT_ENTITIES + (NER_ENTITIES if engine == "ner" else [])


class CustomRecognizer(_Strict):
    """A configured entity: a regex (optionally boosted by context words just before a match) and/or
    a deny list of exact words or phrases (case-insensitive, whole words)."""

    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    pattern: str | None = None
    deny_list: list[str] = Field(default_factory=list)
    score: float = Field(default=0.8, gt=0, le=1)
    context: list[str] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _something_to_find(self) -> CustomRecognizer:
        if self.pattern is None and not self.deny_list:
            raise ValueError("a custom recognizer needs a 'pattern', a 'deny_list', or both")
        return self


def _check_entities(entities: list[str] | None, engine: PiiEngine, custom: list[str]) -> None:
    if entities is None:
        return
    known = set(engine_entities(engine)) | set(custom)
    unknown = [e for e in entities if e not in known]
    if unknown:
        hint = " (PERSON, LOCATION, ... need engine: ner)" if set(unknown) & set(NER_ENTITIES) else ""
        raise ValueError(f"entities: no recognizer for {unknown} with engine {engine!r}{hint}; "
                         f"known: {sorted(known)}")


class Redaction(_Strict):
    enabled: bool = True
    engine: PiiEngine = "pattern"
    entities: list[str] | None = Field(
        default=None, description="built-in entities to find; default: the engine's defaults")
    score_threshold: float = Field(default=0.4, ge=0, le=1)
    allow_list: list[str] = Field(
        default_factory=list, description="values never redacted (exact, case-insensitive)")
    allow_patterns: list[str] = Field(
        default_factory=list, description="regexes: a value matching one in full is never redacted")
    operator: Operator = "placeholder"
    operators: dict[str, Operator] = Field(default_factory=dict, description="per entity type, wins over operator")
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    mask_keep_last: int = Field(
        default=4, ge=0, description="letters/digits left visible at the end of a masked value (at most half)")
    hash_salt: REDACTION_SECRET = Field(
        default=None, description="env:NAME of the salt; default: derived from the gateway's sealing key")
    restore: bool = True
    custom: list[CustomRecognizer] = Field(default_factory=list)

    @field_validator("allow_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            re.compile(pattern)
        return value

    @model_validator(mode="after")
    def _entities_known(self) -> Redaction:
        _check_entities(self.entities, self.engine, [c.entity for c in self.custom])
        unknown = set(self.operators) - set(self.entity_types)
        if unknown:
            raise ValueError(f"operators: {sorted(unknown)} are not among the entities found")
        return self

    @property
    def entity_types(self) -> list[str]:
        """Every entity type this redaction finds: the built-ins chosen, then the custom ones."""
        builtin = self.entities if self.entities is not None else (
            DEFAULT_ENTITIES + (NER_DEFAULT_ENTITIES if self.engine == "ner" else []))
        return list(dict.fromkeys([*builtin, *(c.entity for c in self.custom)]))

    def operator_for(self, entity_type: str) -> Operator:
        return self.operators.get(entity_type, self.operator)


FilterAction = Literal["redact", "block", "flag"]


class BlockedPattern(_Strict):
    name: str
    pattern: str
    action: FilterAction = "block"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class OutputFilter(_Strict):
    enabled: bool = True
    engine: PiiEngine = "pattern"
    pii_action: Literal["redact", "block", "flag", "off"] = "redact"
    entities: list[str] | None = Field(
        default=None, description="built-in entities to find; default: the engine's defaults")
    blocked: list[BlockedPattern] = Field(default_factory=list)
    window_chars: int = Field(
        default=64, ge=8, le=4096,
        description="streams: the most text held back while it could still become part of a value")
    hold_words: bool = Field(
        default=False,
        description="streams: true holds every unfinished word until it ends (it could be an email address's "
                    "local part: an address split anywhere is caught whole, for up to one chunk of delay and "
                    "fewer chunks); false (default) releases a run of letters at once, so the letters before an "
                    "address's first dot or @ can leave before the @ shows it was one (the rest is redacted)")

    @model_validator(mode="after")
    def _entities_known(self) -> OutputFilter:
        _check_entities(self.entities, self.engine, [])
        return self

    @property
    def entity_types(self) -> list[str]:
        """The built-in entity types scanned for (the profile's custom recognizers come on top)."""
        if self.entities is not None:
            return list(self.entities)
        return DEFAULT_ENTITIES + (NER_DEFAULT_ENTITIES if self.engine == "ner" else [])


def default_guardrails() -> list[GuardrailSpec]:
    """On unless a config says otherwise: prompt-injection rules and the response_format check, both
    recording (``flag``) rather than blocking."""
    return [GuardrailSpec(use="prompt_injection", action="flag", threshold=0.5),
            GuardrailSpec(use="response_format", action="flag", threshold=0.5)]


class GuardrailProfile(_Strict):
    """A named set of guardrail settings, chosen per key or per model alias. A section left out is
    the top-level one; a section given replaces it whole."""

    redaction: Redaction | None = None
    output_filter: OutputFilter | None = None
    guardrails: list[GuardrailSpec] | None = None


class Guardrails(_Strict):
    """The settings one request runs with (``GatewayConfig.guardrails_for``)."""

    profile: str
    redaction: Redaction
    output_filter: OutputFilter
    guardrails: list[GuardrailSpec]

    def phase(self, phase: Literal["input", "output"], kinds: dict[str, str]) -> list[GuardrailSpec]:
        """The specs whose implementation runs in ``phase``; ``kinds`` maps ``use`` to its phase."""
        return [g for g in self.guardrails if kinds.get(g.use) == phase]
