"""How much of a streamed answer's unreleased text must wait: the tail that could still become (part of)
a value the output filter would change.

A stream releases text as soon as no value can still reach back into it. ``HoldBack.start(text)`` is
the earliest offset of ``text`` (the text not yet released) from which the rest could be the beginning
of a match, given only what has arrived; everything before it is final and can go out now. The rules,
each active only when its recognizer is:

- **email** (``EMAIL_ADDRESS``): the unfinished word: the trailing run of characters an address may
  contain (letters, digits, ``. _ % + - @`` …). Any word can be an address's local part until a space
  or other punctuation ends it, so ``hold_words`` holds the unfinished word whole, and an address
  split anywhere is caught whole at the price of up to one chunk of delay (a chunk inside a word is not
  sent on its own: fewer, later chunks). By default (without ``hold_words``) a run of letters alone (or
  ending in ``!`` or ``?``) is released at once (prose never waits): a run is held only once it has
  something else in it (a digit, a dot, ``@``…), so the letters before an address's first dot or ``@``
  can leave before the ``@`` shows it was one (the rest is still redacted).
- **numbers** (phone, card, SSN, IPv4, IBAN digits): a chain of digits, each at most 4 characters after
  the previous one, then at most 4 more characters (the next digit group may still come), with a
  leading ``+`` or ``(`` and an IBAN's country code; a lone ``+`` or ``(`` at the end.
- **IBAN**: two capitals (and what may follow them in an IBAN); **IPv6**: hex groups with a colon.
- **names** (the NER engine's entities): the trailing run of capitalised words (with particles such as
  ``van``, ``de``, ``of``), which the next word may still extend.
- **blocked patterns and custom recognizers**: their own regexes, matched partially (the ``regex``
  module's ``partial=True``): the earliest match, complete or not, that reaches the end of the text.

Placeholders (an unterminated ``<EMAIL_ADDRE`` tail) are the output filter's own rule
(``StreamFilter._placeholder_across``). The hold is bounded by the filter's ``window_chars``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # partial matching, Unicode classes (presidio depends on it too)

from schemas.config import NER_ENTITIES

_EMAIL_RUN = regex.compile(r"[\w.!#$%&'*+\-/=?^`{|}~@]+\Z")
_LETTERS = regex.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"(?:[+(]\s?)?(?:[A-Z]{2}[ -]?)?\d(?:\D{0,4}\d)*\D{0,4}\Z")
_OPENER = re.compile(r"[+(]\s?\Z")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{1,2}(?:[ -]?\d{1,2}(?:[ -]?[A-Z0-9])*)?[ -]?\Z")
_IPV6 = re.compile(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*\Z")
_PARTICLES = r"(?:of|the|and|&|van|von|der|den|de|del|della|da|dos|du|di|la|le|bin|al|el|ter|y)"
_NAME_WORD = r"\p{Lu}[\p{L}\p{M}\p{N}'’.\-]*"
_NAMES = regex.compile(rf"(?:{_NAME_WORD}(?:[ \t]+{_PARTICLES}(?![\p{{L}}\p{{N}}]))*[ \t]*)+\Z")

NUMBER_ENTITIES = frozenset({"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE"})


CUSTOM_FLAGS = regex.IGNORECASE | regex.DOTALL | regex.MULTILINE
"""How presidio matches a custom recognizer's pattern (its ``PatternRecognizer`` default flags)."""


def pattern_regexes(patterns: Iterable[str], flags: int = 0) -> tuple[regex.Pattern[str], ...]:
    """The patterns compiled for partial matching (``regex`` reads Python's ``re`` syntax)."""
    return tuple(regex.compile(p, flags) for p in patterns)


@dataclass(frozen=True, slots=True)
class HoldBack:
    """The rules of one stream filter (module doc); ``start`` applies them."""

    entities: frozenset[str] = frozenset()
    patterns: tuple[regex.Pattern[str], ...] = ()
    hold_words: bool = False

    @classmethod
    def of(cls, entities: Sequence[str], blocked: Iterable[str] = (), custom: Iterable[str] = (), *,
           hold_words: bool = False) -> HoldBack:
        """The rules for ``entities`` (what the PII scanner finds; none when it is off), the ``blocked``
        patterns and the ``custom`` recognizers' patterns."""
        return cls(frozenset(entities), pattern_regexes(blocked) + pattern_regexes(custom, CUSTOM_FLAGS),
                   hold_words)

    @property
    def names(self) -> bool:
        return not self.entities.isdisjoint(NER_ENTITIES)

    def start(self, text: str) -> int:
        """The earliest offset of ``text`` whose suffix could still become (part of) a match; ``len(text)``
        when nothing needs to wait."""
        end = len(text)
        starts = [end]
        if "EMAIL_ADDRESS" in self.entities:
            run = _EMAIL_RUN.search(text)
            if run is not None and (self.hold_words or not _LETTERS.fullmatch(run.group(0).rstrip("!?"))):
                starts.append(run.start())
        if not self.entities.isdisjoint(NUMBER_ENTITIES):
            for rule in (_NUMBER, _OPENER):
                found = rule.search(text)
                if found is not None:
                    starts.append(found.start())
        if "IBAN_CODE" in self.entities:
            found = _IBAN.search(text)
            if found is not None:
                starts.append(found.start())
        if "IP_ADDRESS" in self.entities and ":" in text:
            found = _IPV6.search(text)
            if found is not None:
                starts.append(found.start())
        if self.names:
            found = _NAMES.search(text)
            if found is not None:
                starts.append(found.start())
        for pattern in self.patterns:
            for match in pattern.finditer(text, partial=True):
                if match.end() == end and match.end() > match.start():
                    starts.append(match.start())
                    break
        return min(starts)
