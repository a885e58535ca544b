from __future__ import annotations

import random
from typing import Any

import pytest

from schemas.config import DEFAULT_ENTITIES
from stages.pii import PREFILTERS, Finding, PiiScanner, has_digit, merge_same_type, resolve_overlaps

PII_SAMPLES = [
    "write to jane.doe@example.com today",
    "mail: o'neil+tag@sub.example.co.uk, or x@y.io",
    "bad mail user@localhost and a@b.c",
    "call +1 (212) 555-0143 or 212.555.0199",
    "office 020 7946 0958, mobile 0151 23456789, Paris 01 42 68 53 00",
    "pager 1640 and 01690, Tel Aviv 03-5123456, Mumbai 022 2778 2888",
    "+98 21 8888 1234 and +44 20 7946 0958 and +55 11 91234-5678",
    "card 4111 1111 1111 1111, amex 3782-822463-10005, mc 5555555555554444",
    "not a card 4111 1111 1111 1112 nor 1234567890123",
    "ssn 123-45-6788, 078-05-1121, 219 09 9999, 219.09.9999, 219099999",
    "iban DE89370400440532013000 or GB82 WEST 1234 5698 7654 32 or de89370400440532013000",
    "servers 10.0.0.1, 192.168.1.20/24, 256.1.1.1, 1.2.3",
    "ipv6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 and fe80::1%eth0 and ::1 and ::",
    "letters only a::b, dead:beef:cafe:babe:dead:beef:cafe:babe and abcd:: and ::ffff:10.0.0.1",
    "mapped 64:ff9b::192.0.2.33 and 2001:db8::/32",
    "unicode digits ٠١٢٣٤٥٦٧٨٩ and ２１２ ５５５ ０１４３ and ४१११ ११११ ११११ ११११",
    "employee EMP-123456 badge",
    "EMP-654321 without context",
    "phone: 555-0143, ext. 1234, 1-800-FLOWERS, (800) 555 1212 x12",
    "dates 2024-03-05, 05/03/2024, 12:30:45, v1.2.3, 3.14159, $4,500,000.00",
]
NO_PII_SAMPLES = [
    "Please summarize the history of the printing press and its impact on European society.",
    "In 1450 Gutenberg printed; in 2023 revenue grew 15% across 12 regions (see note 3).",
    "std::vector<int> v; time:fast; key: value; ratio 3:2; v2.0 and 1.5x",
    "",
    "   \n\t ",
]
_ALPHABET = "0123456789" * 4 + "  -.:/()+@" + "abcdefxyzABCDEFGHXYZ" + "٣２"


def _random_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    fragments = PII_SAMPLES + NO_PII_SAMPLES
    texts = []
    for _ in range(n):
        noise = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(5, 60)))
        piece = rng.choice(fragments)
        cut = rng.randint(0, len(piece))
        texts.append(
            f"{piece[:cut]}{noise} {piece[cut:]}" if rng.random() < 0.5 else f"{noise} {piece} {noise}"
        )
    return texts


class CountingAnalyzer:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def analyze(self, text: str, language: str, entities: list[str] | None = None, **kw: Any) -> list[Any]:
        self.calls.append(list(entities or []))
        return self.inner.analyze(text, language=language, entities=entities, **kw)  # type: ignore[no-any-return]

    def get_supported_entities(self, language: str | None = None) -> list[str]:
        return self.inner.get_supported_entities(language)  # type: ignore[no-any-return]


def _spans(text: str, findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.entity_type, text[f.start : f.end]) for f in findings]


def test_finds_every_builtin_entity(scanner: PiiScanner) -> None:
    text = (
        "Jane jane.doe@example.com, +1 212 555 0143, card 4111 1111 1111 1111, SSN 123-45-6788, "
        "IBAN DE89370400440532013000, host 192.168.1.20."
    )
    assert _spans(text, scanner.find(text)) == [
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("PHONE_NUMBER", "+1 212 555 0143"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("US_SSN", "123-45-6788"),
        ("IBAN_CODE", "DE89370400440532013000"),
        ("IP_ADDRESS", "192.168.1.20"),
    ]


@pytest.mark.parametrize("text", NO_PII_SAMPLES)
def test_no_findings_in_ordinary_text(scanner: PiiScanner, text: str) -> None:
    assert scanner.find(text) == []


def test_prefilter_loses_nothing(analyzer: Any) -> None:
    entities = [*DEFAULT_ENTITIES, "EMPLOYEE_ID"]
    fast = PiiScanner(analyzer, entities, 0.4)
    full = PiiScanner(analyzer, entities, 0.4, prefilter=False)
    texts = PII_SAMPLES + NO_PII_SAMPLES + _random_texts(250)
    found = 0
    for text in texts:
        expected = full.find(text)
        assert fast.find(text) == expected, text
        found += len(expected)
    assert found > 60  # the sample does exercise the recognizers


def test_each_condition_holds_on_every_value_found(analyzer: Any) -> None:
    """Stronger than equal findings: each condition is necessary for the matched value by itself."""
    raw = CountingAnalyzer(analyzer)
    full = PiiScanner(raw, DEFAULT_ENTITIES, 0.0, prefilter=False)
    seen: set[str] = set()
    for text in PII_SAMPLES + _random_texts(150, seed=11):
        for r in raw.inner.analyze(text, language="en", entities=list(DEFAULT_ENTITIES), score_threshold=0.0):
            value = text[r.start : r.end]
            assert PREFILTERS[r.entity_type](value, has_digit(value)), (r.entity_type, value)
            seen.add(r.entity_type)
    assert seen == set(DEFAULT_ENTITIES)
    assert full.entities == tuple(DEFAULT_ENTITIES)


def test_no_presidio_call_without_candidates(analyzer: Any) -> None:
    counting = CountingAnalyzer(analyzer)
    scanner = PiiScanner(counting, DEFAULT_ENTITIES, 0.4)
    assert scanner.find(NO_PII_SAMPLES[0]) == []
    assert counting.calls == []
    scanner.find("in 1450 and contact: a@b.co")
    assert counting.calls == [["EMAIL_ADDRESS", "PHONE_NUMBER"]]


def test_custom_entities_always_run(analyzer: Any) -> None:
    counting = CountingAnalyzer(analyzer)
    scanner = PiiScanner(counting, ["EMAIL_ADDRESS", "EMPLOYEE_ID"], 0.4)
    text = "employee EMP-123456 joined"
    assert _spans(text, scanner.find(text)) == [("EMPLOYEE_ID", "EMP-123456")]
    assert counting.calls == [["EMPLOYEE_ID"]]


def test_unknown_entity_is_a_config_error(analyzer: Any) -> None:
    with pytest.raises(ValueError, match="PERSON"):
        PiiScanner(analyzer, ["EMAIL_ADDRESS", "PERSON"], 0.4)


def test_has_digit_ascii_and_unicode() -> None:
    assert has_digit("abc 7") and has_digit("ab٣") and has_digit("x２")
    assert not has_digit("no digits here") and not has_digit("ünïcödé only") and not has_digit("")


def test_overlaps_resolved_highest_score_then_longest() -> None:
    findings = [
        Finding("PHONE_NUMBER", 0, 11, 0.4),
        Finding("US_SSN", 0, 11, 0.85),
        Finding("A", 20, 25, 0.5),
        Finding("B", 18, 30, 0.5),
        Finding("C", 40, 45, 0.9),
    ]
    assert resolve_overlaps(findings) == [findings[1], findings[3], findings[4]]


def test_overlapping_entities_in_text_come_out_disjoint(scanner: PiiScanner) -> None:
    text = "ssn 123-45-6788 phone 212-555-0143 card 4111-1111-1111-1111"
    findings = scanner.find(text)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))


def test_no_pii_prompt_never_reaches_presidio(analyzer: Any) -> None:
    counting = CountingAnalyzer(analyzer)
    scanner = PiiScanner(counting, DEFAULT_ENTITIES, 0.4)
    for text in [NO_PII_SAMPLES[0] * 3, "", "   \n\t ", "Dear team, the plan: ship it (soon)."]:
        assert scanner.find(text[:200]) == []
    assert counting.calls == []


def test_same_type_overlaps_merge() -> None:
    findings = [
        Finding("PERSON", 0, 4, 0.85),   # "John" from the model
        Finding("PERSON", 0, 10, 0.7),   # "John Smith" from a cue
        Finding("PERSON", 8, 14, 0.5),
        Finding("LOCATION", 2, 6, 0.9),
        Finding("PERSON", 20, 25, 0.6),
    ]
    assert sorted(merge_same_type(findings), key=lambda f: (f.start, f.entity_type)) == [
        Finding("PERSON", 0, 14, 0.85), Finding("LOCATION", 2, 6, 0.9), Finding("PERSON", 20, 25, 0.6)]


# -- allow lists ------------------------------------------------------------------------------------

def test_allow_list_is_exact_and_case_insensitive(analyzer: Any) -> None:
    scanner = PiiScanner(analyzer, DEFAULT_ENTITIES, 0.4, allow_list=["Support@Example.com"])
    text = "write support@example.com or SUPPORT@EXAMPLE.COM, not jane.support@example.com"
    assert _spans(text, scanner.find(text)) == [("EMAIL_ADDRESS", "jane.support@example.com")]


def test_allow_patterns_match_whole_values(analyzer: Any) -> None:
    scanner = PiiScanner(analyzer, DEFAULT_ENTITIES, 0.4, allow_patterns=[r".*@example\.org", r"10\.\d+\.\d+\.\d+"])
    text = "a@example.org, a@example.org.evil.com, hosts 10.0.0.1 and 192.168.0.1"
    assert _spans(text, scanner.find(text)) == [
        ("EMAIL_ADDRESS", "a@example.org.evil.com"), ("IP_ADDRESS", "192.168.0.1")]
    assert scanner.allowed("10.1.2.3") and not scanner.allowed("x10.1.2.3")


def test_custom_deny_list_entities_are_found_and_allowed(analyzer: Any) -> None:
    from infra.presidio import build_analyzer
    from schemas.config import CustomRecognizer

    codenames = CustomRecognizer(entity="CODENAME", deny_list=["Falcon", "Osprey"], score=0.9)
    scanner = PiiScanner(build_analyzer([codenames]), ["CODENAME"], 0.4, allow_list=["osprey"])
    text = "Falcon and Osprey ship, falcons do not"
    assert _spans(text, scanner.find(text)) == [("CODENAME", "Falcon")]


# -- the NER engine ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ner_scanner() -> PiiScanner:
    from infra.presidio import build_analyzer

    return PiiScanner(build_analyzer(engine="ner"), [*DEFAULT_ENTITIES, "PERSON", "LOCATION"], 0.4,
                      allow_list=["Acme"])


@pytest.mark.parametrize(("text", "expected"), [
    ("Sarah Connor called about her order.", [("PERSON", "Sarah Connor")]),
    ("Please forward this to Dr. Chen.", [("PERSON", "Chen")]),
    ("The package for Ahmed Khan goes to Lisbon", [("PERSON", "Ahmed Khan"), ("LOCATION", "Lisbon")]),
    ("Meet in Chicago; mail sarah.connor@example.com",
     [("LOCATION", "Chicago"), ("EMAIL_ADDRESS", "sarah.connor@example.com")]),
    ("Regards,\nEmily Watson", [("PERSON", "Emily Watson")]),
    ("Summarize the history of the printing press.", []),
])
def test_ner_scanner_finds_people_and_places(ner_scanner: PiiScanner, text: str,
                                             expected: list[tuple[str, str]]) -> None:
    assert _spans(text, ner_scanner.find(text)) == expected


def test_ner_findings_are_disjoint_and_in_order(ner_scanner: PiiScanner) -> None:
    text = "Dr. Maria Gonzalez (maria@example.com) moved from Madrid to Paris; call Maria on +34 912 345 678."
    findings = ner_scanner.find(text)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))
    kinds = {f.entity_type for f in findings}
    assert {"PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER"} <= kinds
