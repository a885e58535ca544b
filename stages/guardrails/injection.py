"""``prompt_injection``: a rules engine over the request's messages (input phase).

Each text of the scanned roles is normalised (zero-width characters removed, NFKC, casefolded) and
run through the rules of ``injection_rules.py``: a rule's regex runs only when one of its trigger
words is in the text, so a benign prompt costs a few substring checks. Obfuscated forms are decoded
and scanned too: leetspeak (``1gn0re prev10us``) read as letters, and base64 blobs that decode to
text. Tool output (role ``tool``, ``tool_result`` parts) is where indirect injections hide: the same
phrasing weighs ``tool_result_weight`` times more there, and a few rules look only there.

Score = 1 - Π(1 - w) over the rules matched (each at its highest weight seen); findings are
``{rule_id: matches}``, never the text.
"""

from __future__ import annotations

import binascii
import re
import unicodedata
from collections.abc import Iterable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.guardrails import Phase
from stages.guardrails.base import PASS, Guardrail, Result, Subject
from stages.guardrails.injection_rules import OBFUSCATION_RULES, RULE_IDS, RULES, Rule, compile_phrase
from stages.guardrails.texts import Source, default_roles, request_texts

_ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
_ZW_RUN = re.compile(f"[{_ZERO_WIDTH}]+")
_ZW_BETWEEN_LETTERS = re.compile(f"(?<=[^\\W\\d_])[{_ZERO_WIDTH}]+(?=[^\\W\\d_])")
_LEET_HINT = re.compile(r"[0134578@$|][a-z]")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}")
_BLOB_WORD = 24
"""A word this long (base64's ``+`` and ``/`` split blobs into words) is what makes the blob scan run."""
_MAX_BLOBS = 4
_MAX_BLOB_CHARS = 16_384


class ExtraPattern(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="the finding's name")
    regex: str = Field(min_length=1, description="runs on the normalised (casefolded) text; a space is any whitespace")
    weight: float = Field(gt=0, le=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_phrase(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return value


class InjectionSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    patterns: list[ExtraPattern] = Field(default_factory=list, description="rules added to the built-in ones")
    disabled_rules: list[str] = Field(default_factory=list, description="built-in rule ids not to run")
    scan_roles: list[Source] = Field(
        default_factory=default_roles, min_length=1,
        description="whose text is scanned; the system prompt is the app's own and not scanned by default")
    tool_result_weight: float = Field(default=1.5, ge=0, le=10,
                                      description="multiplies a rule's weight when it matches in tool output")
    max_scan_chars: int = Field(default=32_768, ge=256,
                                description="per text: longer ones are scanned at their head and tail")

    @model_validator(mode="after")
    def _ids_known(self) -> InjectionSettings:
        unknown = sorted(set(self.disabled_rules) - RULE_IDS)
        if unknown:
            raise ValueError(f"disabled_rules: unknown rule ids {unknown}; known: {sorted(RULE_IDS)}")
        ids = [p.id for p in self.patterns]
        clash = sorted({i for i in ids if i in RULE_IDS or ids.count(i) > 1})
        if clash:
            raise ValueError(f"patterns: ids {clash} are used twice or by a built-in rule")
        return self


def normalise(text: str) -> str:
    """Zero-width characters removed, NFKC (full-width and styled letters to plain ones), casefolded."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", _ZW_RUN.sub("", text))
    return text.casefold()


def _decode_base64(blob: str) -> str | None:
    """The text a base64 (or base64url) blob decodes to, if it is mostly printable text."""
    data = blob.rstrip("=").replace("-", "+").replace("_", "/")
    data += "=" * (-len(data) % 4)
    try:
        text = binascii.a2b_base64(data).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if len(text) < 12:
        return None
    printable = sum(1 for c in text if c.isprintable() or c.isspace())
    return text if printable >= 0.9 * len(text) else None


_NOT_WORD = bytes(c for c in range(128) if not (chr(c).isalnum() or c == ord("_")))
_SPLIT = bytes.maketrans(_NOT_WORD, b" " * len(_NOT_WORD))
_LEET_BYTES = bytes.maketrans(b"0134578@$|", b"oieastbasi")


def words_of(data: bytes) -> set[bytes]:
    """The words of normalised text as UTF-8 (runs of ``[a-z0-9_]`` and non-ASCII bytes)."""
    return set(data.translate(_SPLIT).split())


class Engine:
    """The compiled rules of one configuration, indexed by trigger word: built once, then pure."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self.always = tuple(r for r in self.rules if not r.triggers)
        index: dict[bytes, list[tuple[Rule, tuple[frozenset[bytes], ...], tuple[tuple[str, ...], ...]]]] = {}
        by_literal: list[tuple[Rule, tuple[tuple[str, ...], ...]]] = []
        for rule in self.rules:
            for trigger in rule.triggers:
                groups = tuple(frozenset(w.encode() for w in g) for g in trigger.words)
                if groups:
                    for word in groups[0]:
                        index.setdefault(word, []).append((rule, groups[1:], trigger.literals))
                else:
                    by_literal.append((rule, trigger.literals))
        self.index = index
        self.keys = frozenset(index)
        self.by_literal = tuple(by_literal)

    def candidates(self, text: str, words: set[bytes], tool: bool) -> list[Rule]:
        """The rules whose triggers hold for normalised ``text`` (with its ``words``)."""
        chosen: dict[str, Rule] = {r.id: r for r in self.always}
        for key in words & self.keys:
            for rule, groups, literals in self.index[key]:
                if rule.id in chosen or (rule.tool_only and not tool):
                    continue
                if all(not g.isdisjoint(words) for g in groups) and _has_all(text, literals):
                    chosen[rule.id] = rule
        for rule, literals in self.by_literal:
            if rule.id not in chosen and (tool or not rule.tool_only) and _has_all(text, literals):
                chosen[rule.id] = rule
        return list(chosen.values())

    def match(self, text: str, words: set[bytes], tool: bool) -> dict[str, int]:
        """{rule id: matches} of the rules matching normalised ``text``."""
        found: dict[str, int] = {}
        for rule in self.candidates(text, words, tool):
            count = len(rule.pattern.findall(text))
            if count:
                found[rule.id] = count
        return found


def _has_all(text: str, literals: tuple[tuple[str, ...], ...]) -> bool:
    """Each group of ``literals`` has one that is a substring of ``text`` (its first character is
    looked for first: a one-character search is a ``memchr``, several times faster than a longer one)."""
    return all(any(lit[0] in text and lit in text for lit in group) for group in literals)


class PromptInjection(Guardrail):
    phase: ClassVar[Phase] = "input"
    Settings: ClassVar[type[BaseModel]] = InjectionSettings

    def __init__(self, settings: BaseModel) -> None:
        super().__init__(settings)
        assert isinstance(settings, InjectionSettings)
        self.options = settings
        disabled = set(settings.disabled_rules)
        extra = [Rule(p.id, p.weight, compile_phrase(p.regex)) for p in settings.patterns]
        self.engine = Engine([r for r in RULES if r.id not in disabled] + extra)
        self.weights = {r.id: r.weight for r in self.engine.rules} | {
            k: w for k, w in OBFUSCATION_RULES.items() if k not in disabled}
        self.roles = frozenset(settings.scan_roles)

    def check(self, subject: Subject) -> Result:
        counts: dict[str, int] = {}
        weights: dict[str, float] = {}
        for source, text in request_texts(subject.request, self.roles):
            for rule_id, count in self.scan_text(text, tool=source == "tool").items():
                counts[rule_id] = counts.get(rule_id, 0) + count
                weight = self._weight(rule_id, source)
                if weight > weights.get(rule_id, 0.0):
                    weights[rule_id] = weight
        if not counts:
            return PASS
        miss = 1.0
        for weight in weights.values():
            miss *= 1.0 - weight
        return Result(score=min(1.0, 1.0 - miss), findings=counts)

    def _weight(self, rule_id: str, source: Source) -> float:
        weight = self.weights.get(rule_id, 0.0)
        if source == "tool":
            weight *= self.options.tool_result_weight
        return min(1.0, weight)

    def scan_text(self, text: str, *, tool: bool = False) -> dict[str, int]:
        """{rule id: matches} for one raw text (tool output when ``tool``)."""
        limit = self.options.max_scan_chars
        if len(text) > limit:
            text = text[: limit // 2] + "\n" + text[-(limit // 2):]
        norm = normalise(text)
        data = norm.encode("utf-8", "ignore")
        words = words_of(data)
        found = self.engine.match(norm, words, tool)
        if not text.isascii() and "obfuscation.zero_width" in self.weights:
            hidden = len(_ZW_BETWEEN_LETTERS.findall(text))
            if hidden:
                found["obfuscation.zero_width"] = hidden
        if "obfuscation.leetspeak" in self.weights and _LEET_HINT.search(norm):
            self._scan_leet(data, words, found, tool)
        if "obfuscation.base64" in self.weights and any(len(w) >= _BLOB_WORD for w in words):
            self._scan_base64(text, found, tool)
        return found

    def _scan_leet(self, data: bytes, words: set[bytes], found: dict[str, int], tool: bool) -> None:
        """Read digits and symbols as the letters they stand for; count the rules only that reading matches."""
        read = data.translate(_LEET_BYTES)
        read_words = words_of(read)
        if not (read_words - words) & self.engine.keys:
            return
        new = {k: v for k, v in self.engine.match(read.decode("utf-8", "ignore"), read_words, tool).items()
               if k not in found}
        if new:
            found.update(new)
            found["obfuscation.leetspeak"] = len(new)

    def _scan_base64(self, text: str, found: dict[str, int], tool: bool) -> None:
        for i, blob in enumerate(_BASE64_BLOB.finditer(text)):
            if i >= _MAX_BLOBS:
                break
            decoded = _decode_base64(blob.group()[:_MAX_BLOB_CHARS])
            if decoded is None:
                continue
            norm = normalise(decoded)
            inner = self.engine.match(norm, words_of(norm.encode("utf-8", "ignore")), tool)
            if inner:
                for rule_id, count in inner.items():
                    found[rule_id] = found.get(rule_id, 0) + count
                found["obfuscation.base64"] = found.get("obfuscation.base64", 0) + 1
