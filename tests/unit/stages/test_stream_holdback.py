"""What a stream holds back: only a tail that could still become (part of) a value."""

from __future__ import annotations

import pytest

from schemas.config import DEFAULT_ENTITIES, NER_DEFAULT_ENTITIES
from stages.stream_holdback import HoldBack

PATTERN = HoldBack.of(DEFAULT_ENTITIES, hold_words=True)
LETTERS_GO = HoldBack.of(DEFAULT_ENTITIES)  # the default
NER = HoldBack.of([*DEFAULT_ENTITIES, *NER_DEFAULT_ENTITIES], hold_words=True)


def held(rules: HoldBack, text: str) -> str:
    return text[rules.start(text) :]


@pytest.mark.parametrize(("text", "tail"), [
    ("The answer is simple. ", ""),
    ("The answer is simple", "simple"),          # an unfinished word could be an address's local part
    ("write to jane.d", "jane.d"),
    ("write to jane.doe@exa", "jane.doe@exa"),
    ("call +", "+"),
    ("call (", "("),
    ("call +1 212 55", "+1 212 55"),
    ("call 555-0143 or", "555-0143 or"),         # the next digit group may still come
    ("call 555-0143 or mail", "mail"),            # five characters after the last digit: it ended
    ("card 4111 1111 ", "4111 1111 "),
    ("IBAN DE", "DE"),
    ("IBAN DE89 3704 ", "DE89 3704 "),
    ("IBAN GB82 WEST 12", "GB82 WEST 12"),
    ("host fe80::", "fe80::"),
    ("host 10.20.", "10.20."),
    ("I ", "I "),                                 # could be an IBAN's country code, until the next character
    ("Done, thanks!", "thanks!"),                # "!" may be in a local part: held until the word ends
    ("Done, thanks! ", ""),
])
def test_pattern_engine_tails(text: str, tail: str) -> None:
    assert held(PATTERN, text) == tail


@pytest.mark.parametrize(("text", "tail"), [
    ("The answer is simple", ""),                 # letters alone go at once
    ("write to jane", ""),
    ("thanks for asking?", ""),
    ("thanks for asking.", "asking."),           # "jane." may go on as "jane.doe@"
    ("IBAN DE", "DE"),                            # capitals: an IBAN's start, in both modes
    ("IBAN DE8", "DE8"),
    ("write to jane.d", "jane.d"),                # a dot, a digit or @: it could be an address
    ("write to jane_doe", "jane_doe"),
    ("call +1 212 55", "+1 212 55"),
])
def test_without_hold_words_letters_go_at_once(text: str, tail: str) -> None:
    assert held(LETTERS_GO, text) == tail


@pytest.mark.parametrize(("text", "tail"), [
    ("I met Dr. Jane", "Dr. Jane"),
    ("I met Dr. Jane ", "Dr. Jane "),
    ("the Bank of ", "Bank of "),
    ("Ludwig van ", "Ludwig van "),
    ("I met Jane yesterday", "yesterday"),        # a lower-case word ends the name
    ("I met Jane, ", ""),
])
def test_names_under_the_ner_engine(text: str, tail: str) -> None:
    assert held(NER, text) == tail


def test_blocked_and_custom_patterns_hold_their_partial_matches() -> None:
    rules = HoldBack.of([], blocked=[r"(?i)\binternal[- ]only\b", r"sk-[A-Za-z0-9]{8}"], custom=[r"EMP-\d{6}"])
    assert held(rules, "this is intern") == "intern"
    assert held(rules, "this is internal-") == "internal-"
    assert held(rules, "the key sk-AB") == "sk-AB"
    assert held(rules, "staff emp-12") == "emp-12"       # custom recognizers ignore case, as presidio does
    assert held(rules, "this is internal-only ") == ""  # complete, and something else followed
    assert held(rules, "plain words ") == ""


def test_nothing_is_held_when_nothing_is_scanned() -> None:
    assert held(HoldBack.of([]), "call +1 212 55 jane.d") == ""
