"""Input redaction: PII in the request's messages replaced according to the configured operators.

Every message's text (string ``content`` and the ``text`` of text parts) is scanned; what becomes of
each value depends on its entity type's operator (``Redaction.operator_for``):

- ``placeholder``: ``<ENTITY_TYPE_n>``, numbered per entity type in order of appearance, the same value
  getting the same placeholder across messages; restored in the answer. ``mapping`` ({placeholder:
  value}) is what the answer needs: it must be sealed (``stages/vault.py``) before it leaves the stage,
  never logged. Only placeholders go into it.
- ``mask``: each letter and digit becomes ``mask_char`` except the last ``mask_keep_last`` (at most half
  of them, so a short value is never shown whole); punctuation and spaces stay, so the format shows:
  ``**** **** **** 1111``.
- ``hash``: ``<ENTITY_TYPE:0123456789ab>``, the first 12 hex digits of HMAC-SHA256(salt, tenant NUL
  value): the same value gives the same token for one tenant, another for any other tenant; never
  restored.
- ``block``: the request is refused (``PiiBlocked``: 400 ``pii_blocked``); the message names the entity
  types, never the values.

Values are spliced in by hand rather than with presidio-anonymizer's ``AnonymizerEngine`` (a custom
operator per entity type): same text, but ≈7 µs against ≈115 µs for a prompt with 6 findings, and the
anonymizer works right to left, which would number placeholders in reverse order of appearance.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.config import Operator, Redaction
from schemas.errors import ContentBlocked
from stages.pii import Finding, PiiScanner

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")
"""``<ENTITY_TYPE_n>``: what ``redact_request`` writes and the output filter restores."""
HASH_TOKEN = re.compile(r"<([A-Z][A-Z0-9_]*):([0-9a-f]{12})>")
"""``<ENTITY_TYPE:0123456789ab>``: what the ``hash`` operator writes (never restored)."""
HASH_HEX_CHARS = 12


class PiiBlocked(ContentBlocked):
    """The request holds PII whose operator is ``block``. Carries what the verdict records (types,
    counts, score), never a value."""

    default_code = "pii_blocked"

    def __init__(self, blocked: Sequence[str], counts: dict[str, int], score: float, param: str) -> None:
        kinds = ", ".join(sorted(set(blocked)))
        super().__init__(f"the request was blocked: it contains personal data of type {kinds}, which "
                         f"this gateway does not accept", param=param)
        self.blocked = tuple(sorted(set(blocked)))
        self.counts = dict(counts)
        self.score = score


@dataclass(frozen=True, slots=True)
class RedactionResult:
    body: dict[str, Any]
    mapping: dict[str, str] = field(default_factory=dict)
    """{placeholder: original value}: sensitive, seal it before it travels."""
    counts: dict[str, int] = field(default_factory=dict)
    """{entity_type: number of values replaced}."""
    score: float = 0.0
    """The highest score among the findings (0 when none)."""


def mask_value(value: str, mask_char: str, keep_last: int) -> str:
    """Letters and digits masked but the last ``keep_last`` (at most half of them); the rest kept."""
    total = sum(1 for c in value if c.isalnum())
    masked_up_to = total - min(keep_last, total // 2)
    out: list[str] = []
    seen = 0
    for c in value:
        if c.isalnum():
            seen += 1
            out.append(mask_char if seen <= masked_up_to else c)
        else:
            out.append(c)
    return "".join(out)


def hash_value(entity_type: str, value: str, *, tenant: str, salt: bytes) -> str:
    digest = hmac.new(salt, f"{tenant}\0{value}".encode(), hashlib.sha256).hexdigest()
    return f"<{entity_type}:{digest[:HASH_HEX_CHARS]}>"


class _Redactor:
    """Replaces values per operator; allocates ``<TYPE_n>`` per value, skipping any the request
    already contains literally."""

    def __init__(self, taken: set[str], config: Redaction, tenant: str, salt: bytes) -> None:
        self.mapping: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.score = 0.0
        self.blocked: list[str] = []
        self._by_value: dict[tuple[str, str], str] = {}
        self._next: dict[str, int] = {}
        self._taken = taken
        self._config = config
        self._operators: dict[str, Operator] = {}
        self._tenant = tenant
        self._salt = salt

    def _operator(self, entity_type: str) -> Operator:
        op = self._operators.get(entity_type)
        if op is None:
            op = self._operators[entity_type] = self._config.operator_for(entity_type)
            if op == "hash" and not self._salt:
                raise ValueError("the hash operator needs a salt")
        return op

    def _placeholder(self, entity_type: str, value: str) -> str:
        n = self._next.get(entity_type, 1)
        placeholder = f"<{entity_type}_{n}>"
        while placeholder in self._taken:
            n += 1
            placeholder = f"<{entity_type}_{n}>"
        self._next[entity_type] = n + 1
        self.mapping[placeholder] = value
        return placeholder

    def for_value(self, entity_type: str, value: str, score: float) -> str:
        self.counts[entity_type] = self.counts.get(entity_type, 0) + 1
        if score > self.score:
            self.score = score
        op = self._operator(entity_type)
        if op == "placeholder":
            # keyed by value alone, as before: one value, one placeholder across entity types
            key = ("", value)
        else:
            key = (entity_type, value)
        replacement = self._by_value.get(key)
        if replacement is None:
            if op == "placeholder":
                replacement = self._placeholder(entity_type, value)
            elif op == "mask":
                replacement = mask_value(value, self._config.mask_char, self._config.mask_keep_last)
            elif op == "hash":
                replacement = hash_value(entity_type, value, tenant=self._tenant, salt=self._salt)
            else:  # block: the request will be refused; scanning goes on so the verdict counts it all
                self.blocked.append(entity_type)
                replacement = f"<{entity_type}>"
            self._by_value[key] = replacement
        elif op == "block":
            self.blocked.append(entity_type)
        return replacement

    def redact(self, text: str, findings: Iterable[Finding]) -> str:
        """``findings`` are non-overlapping and in text order (``PiiScanner.find`` guarantees it)."""
        pieces: list[str] = []
        pos = 0
        for f in findings:
            pieces.append(text[pos : f.start])
            pieces.append(self.for_value(f.entity_type, text[f.start : f.end], f.score))
            pos = f.end
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)

    def result(self, body: dict[str, Any], param: str, *, restorable: bool = True) -> RedactionResult:
        if self.blocked:
            raise PiiBlocked(self.blocked, self.counts, self.score, param)
        return RedactionResult(body=body, mapping=self.mapping if restorable else {}, counts=self.counts,
                               score=self.score)


def _texts(messages: list[Any]) -> Iterable[str]:
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if (
                    isinstance(part, dict)
                    and part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                ):
                    yield part["text"]


def _literal_placeholders(messages: list[Any]) -> set[str]:
    return {m.group(0) for text in _texts(messages) if "<" in text for m in PLACEHOLDER.finditer(text)}


def redact_request(body: dict[str, Any], scanner: PiiScanner, config: Redaction, *,
                   tenant: str = "", salt: bytes = b"") -> RedactionResult:
    """A copy of ``body`` with PII in its messages replaced per operator; ``body`` is not mutated.

    ``tenant`` and ``salt`` key the ``hash`` operator. Raises ``PiiBlocked`` when a value's operator is
    ``block``."""
    messages = body.get("messages")
    if not config.enabled or not isinstance(messages, list):
        return RedactionResult(body=body)
    placeholders = _Redactor(_literal_placeholders(messages), config, tenant, salt)
    new_messages: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            new_messages.append(message)
            continue
        content = message.get("content")
        if isinstance(content, str):
            redacted = placeholders.redact(content, scanner.find(content))
            new_messages.append(message if redacted is content else {**message, "content": redacted})
        elif isinstance(content, list):
            new_parts: list[Any] = []
            changed = False
            for part in content:
                text = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
                if isinstance(text, str):
                    redacted = placeholders.redact(text, scanner.find(text))
                    if redacted is not text:
                        part = {**part, "text": redacted}
                        changed = True
                new_parts.append(part)
            new_messages.append({**message, "content": new_parts} if changed else message)
        else:
            new_messages.append(message)
    return placeholders.result({**body, "messages": new_messages}, "messages")


def redact_embedding_input(body: dict[str, Any], scanner: PiiScanner, config: Redaction, *,
                           tenant: str = "", salt: bytes = b"") -> RedactionResult:
    """``/v1/embeddings``: the same operators on the strings of ``input`` (token ids pass as they are).
    Nothing is restored in an embedding: the result carries no map."""
    value = body.get("input")
    texts = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] \
        if isinstance(value, list) else []
    if not config.enabled or not texts:
        return RedactionResult(body=body)
    placeholders = _Redactor({m.group(0) for t in texts if "<" in t for m in PLACEHOLDER.finditer(t)},
                             config, tenant, salt)

    def redact(text: str) -> str:
        return placeholders.redact(text, scanner.find(text))

    redacted: str | list[Any] = redact(value) if isinstance(value, str) else \
        [redact(v) if isinstance(v, str) else v for v in value or []]
    return placeholders.result({**body, "input": redacted}, "input", restorable=False)


def conceal(text: str, mapping: dict[str, str]) -> str:
    """Put placeholders back in place of the values they stand for: what the store may keep of an
    answer whose placeholders were restored for the caller."""
    for placeholder, value in sorted(mapping.items(), key=lambda kv: -len(kv[1])):
        if value:
            text = text.replace(value, placeholder)
    return text
