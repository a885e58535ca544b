from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from infra.presidio import BUILTIN_ENTITIES, build_analyzer
from schemas.config import CustomRecognizer

ROOT = Path(__file__).resolve().parents[3]
TICKET = CustomRecognizer(entity="TICKET_ID", pattern=r"\bT-\d{4}\b", score=0.3, context=["ticket"])

NO_NETWORK = textwrap.dedent(
    """
    import json, socket
    attempts = []
    def deny(*args, **kwargs):
        attempts.append(repr(args)[:80])
        raise OSError("network disabled by the test")
    socket.getaddrinfo = deny
    socket.create_connection = deny
    socket.socket.connect = deny
    socket.socket.connect_ex = deny
    """
)
"""A script preamble: every socket connection attempt is counted in ``attempts`` and refused."""

OFFLINE_SCRIPT = NO_NETWORK + textwrap.dedent(
    """

    from infra.presidio import build_analyzer
    analyzer = build_analyzer()
    found = [r.entity_type for r in analyzer.analyze(
        "mail jane@example.co.uk or ops@dept.example.com, not a@b.invalidtld", language="en")]

    # control: the guard does see a tldextract that is allowed to go online
    import tldextract
    seen_before = len(attempts)
    try:
        tldextract.TLDExtract(suffix_list_urls=["https://publicsuffix.org/list/x.dat"], cache_dir=None,
                              fallback_to_snapshot=True)("a.example.com")
    except Exception:
        pass
    print(json.dumps({"found": found, "attempts": seen_before, "control": len(attempts) - seen_before}))
    """
)


@pytest.fixture(scope="module")
def analyzer() -> Any:
    return build_analyzer([TICKET])


def test_builds_and_analyzes_without_any_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLDEXTRACT_")}
    env.update(TLDEXTRACT_CACHE=str(tmp_path / "tld-cache"), PYTHONPATH=str(ROOT), PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["found"] == ["EMAIL_ADDRESS", "EMAIL_ADDRESS"]
    assert report["attempts"] == 0
    assert report["control"] > 0


def test_shared_tldextract_never_fetches(analyzer: Any) -> None:
    import tldextract.tldextract as tld

    assert not any(url.startswith(("http:", "https:")) for url in tld.TLD_EXTRACTOR.suffix_list_urls)


def test_online_suffix_urls_set_before_import_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import tldextract.tldextract as tld

    from infra.presidio import _keep_tldextract_offline

    monkeypatch.setattr(
        tld.TLD_EXTRACTOR, "suffix_list_urls", ("https://publicsuffix.org/x", "file:///psl.dat")
    )
    _keep_tldextract_offline()
    assert tld.TLD_EXTRACTOR.suffix_list_urls == ("file:///psl.dat",)


def test_supported_entities(analyzer: Any) -> None:
    assert set(analyzer.get_supported_entities("en")) == {*BUILTIN_ENTITIES, "TICKET_ID"}


def test_pattern_only_nlp_engine(analyzer: Any) -> None:
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    assert isinstance(analyzer.nlp_engine, NoOpNlpEngine)


def test_custom_recognizer_with_context_words(analyzer: Any) -> None:
    with_context = analyzer.analyze("Ticket T-1234 is open", language="en", score_threshold=0.4)
    assert [(r.entity_type, r.start, r.end, round(r.score, 2)) for r in with_context] == [
        ("TICKET_ID", 7, 13, 0.65)
    ]
    assert analyzer.analyze("see T-1234 today", language="en", score_threshold=0.4) == []
    weak = analyzer.analyze("see T-1234 today", language="en", entities=["TICKET_ID"], score_threshold=0.0)
    assert [round(r.score, 2) for r in weak] == [0.3]


def test_context_words_also_raise_builtin_scores(analyzer: Any) -> None:
    plain = analyzer.analyze("id 078051121", language="en", entities=["US_SSN"], score_threshold=0.0)
    boosted = analyzer.analyze("my ssn 078051121", language="en", entities=["US_SSN"], score_threshold=0.0)
    assert [r.score for r in plain] == [0.05] and [round(r.score, 2) for r in boosted] == [0.4]


def test_custom_entity_cannot_shadow_a_builtin() -> None:
    with pytest.raises(ValueError, match="EMAIL_ADDRESS"):
        build_analyzer([CustomRecognizer(entity="EMAIL_ADDRESS", pattern=r"x")])


def test_prefilter_covers_exactly_the_builtin_recognizers() -> None:
    from stages.pii import PREFILTERS

    assert set(PREFILTERS) == set(BUILTIN_ENTITIES)


# -- deny lists -------------------------------------------------------------------------------------

PROJECT = CustomRecognizer(entity="PROJECT", deny_list=["Falcon", "Project Falcon", "blue-sky"], score=0.9)
BADGE = CustomRecognizer(entity="BADGE", pattern=r"\bB\d{5}\b", deny_list=["visitor badge"], score=0.7)


@pytest.fixture(scope="module")
def deny_analyzer() -> Any:
    return build_analyzer([PROJECT, BADGE])


def _found(analyzer: Any, text: str, entities: list[str]) -> list[tuple[str, str]]:
    results = analyzer.analyze(text, language="en", entities=entities, score_threshold=0.4)
    return sorted((r.entity_type, text[r.start : r.end]) for r in results)


def test_deny_list_whole_words_case_insensitive_longest_first(deny_analyzer: Any) -> None:
    text = "PROJECT FALCON ships; falcon again; Falconry and xFalcon are not; blue-sky too."
    assert _found(deny_analyzer, text, ["PROJECT"]) == [
        ("PROJECT", "PROJECT FALCON"), ("PROJECT", "blue-sky"), ("PROJECT", "falcon")]


def test_recognizer_with_pattern_and_deny_list(deny_analyzer: Any) -> None:
    text = "badge B12345, a Visitor Badge, not B123456"
    assert _found(deny_analyzer, text, ["BADGE"]) == [("BADGE", "B12345"), ("BADGE", "Visitor Badge")]


@pytest.mark.parametrize("entity", ["PERSON", "LOCATION", "ORGANIZATION", "US_SSN"])
def test_custom_entity_cannot_shadow_a_builtin_of_either_engine(entity: str) -> None:
    with pytest.raises(ValueError, match=entity):
        build_analyzer([CustomRecognizer(entity=entity, deny_list=["x"])])


def test_unknown_engine() -> None:
    with pytest.raises(ValueError, match="engine"):
        build_analyzer(engine="bert")  # type: ignore[arg-type]


# -- names after cues (plain rules) ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "names"), [
    ("Please ask for Mr. Kowalski at the desk", ["Kowalski"]),
    ("Dr Anna Maria Weber signed it", ["Anna Maria Weber"]),
    ("my name is Jean-Luc O'Neil, hello", ["Jean-Luc O'Neil"]),
    ("Dear Priya,\nthanks.\nRegards,\nTom McDonald", ["Priya", "Tom McDonald"]),
    ("Hi Team, Dear Sir, Hello Everyone", []),
    ("Dear Mr. J. Smith", ["J. Smith"]),
    ("Hi Anna Monday is fine", ["Anna"]),
    ("Best regards,\nSiobhán Ní Bhriain", ["Siobhán Ní Bhriain"]),
    ("Call me back please. - Chloé", ["Chloé"]),
    ("Update by Sanne de Vries: done", ["Sanne de Vries"]),
    ("Rahul, can you forward it?", ["Rahul"]),
])
def test_cued_names(text: str, names: list[str]) -> None:
    from infra.presidio import find_cued_names

    assert sorted({text[s:e] for s, e, _, _ in find_cued_names(text)}) == sorted(names)


def test_weak_cues_yield_to_dates_the_model_saw(ner: Any) -> None:
    text = "Ship it by Monday, please; report by Alina, please"
    assert _found(ner, text, ["PERSON"]) == [("PERSON", "Alina")]


# -- the NER engine ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ner() -> Any:
    return build_analyzer([TICKET], engine="ner")


def test_ner_engine_uses_the_installed_package_once(ner: Any) -> None:
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from infra.presidio import spacy_pipeline

    engine: Any = ner.nlp_engine
    assert isinstance(engine, SpacyNlpEngine)
    assert engine.nlp is not None and engine.nlp["en"] is spacy_pipeline()
    assert spacy_pipeline().meta["name"].startswith("core_web_sm") and spacy_pipeline().pipe_names == ["ner"]
    other: Any = build_analyzer(engine="ner").nlp_engine
    assert other.nlp["en"] is engine.nlp["en"]


def test_ner_supported_entities(ner: Any) -> None:
    from infra.presidio import NER_BUILTIN_ENTITIES

    assert set(ner.get_supported_entities("en")) == {*BUILTIN_ENTITIES, *NER_BUILTIN_ENTITIES, "TICKET_ID"}


@pytest.mark.parametrize(("text", "expected"), [
    ("Maria Gonzalez booked the flight.", [("PERSON", "Maria Gonzalez")]),
    ("The flight was booked by Maria Gonzalez", [("PERSON", "Maria Gonzalez")]),
    ("Yesterday, in Berlin, Peter Schmidt signed.",
     [("DATE_TIME", "Yesterday"), ("LOCATION", "Berlin"), ("PERSON", "Peter Schmidt")]),
    ("We moved from Toronto to Vancouver last year",
     [("DATE_TIME", "last year"), ("LOCATION", "Toronto"), ("LOCATION", "Vancouver")]),
    ("Mount Everest is high", [("LOCATION", "Mount Everest")]),
])
def test_ner_finds_names_and_places_anywhere(ner: Any, text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(ner, text, ["PERSON", "LOCATION", "DATE_TIME"]) == expected


def test_ner_engine_keeps_pattern_recognizers_and_context(ner: Any) -> None:
    text = "Ticket T-1234 from Ana at ana@example.com"
    assert _found(ner, text, ["EMAIL_ADDRESS", "TICKET_ID"]) == [
        ("EMAIL_ADDRESS", "ana@example.com"), ("TICKET_ID", "T-1234")]


def test_ner_engine_without_ner_entities_finds_only_patterns(ner: Any) -> None:
    assert _found(ner, "Peter Schmidt, +1 212 555 0143", ["PHONE_NUMBER"]) == [("PHONE_NUMBER", "+1 212 555 0143")]


NER_OFFLINE_SCRIPT = NO_NETWORK + textwrap.dedent(
    """

    from infra.presidio import build_analyzer
    analyzer = build_analyzer(engine="ner")
    found = sorted(r.entity_type for r in analyzer.analyze("Peter Schmidt lives in Berlin", language="en"))
    print(json.dumps({"found": found, "attempts": len(attempts)}))
    """
)


def test_ner_engine_builds_without_any_network(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="error", TLDEXTRACT_CACHE=str(tmp_path / "t"))
    proc = subprocess.run(
        [sys.executable, "-c", NER_OFFLINE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"found": ["LOCATION", "PERSON"], "attempts": 0}


@pytest.mark.parametrize("card", ["2221 0012 3412 3450", "2720-9900-0000-0007", "5555555555554444"])
def test_mastercard_2_series_and_classic_cards(analyzer: Any, card: str) -> None:
    found = analyzer.analyze(f"charge card {card} today", language="en", entities=["CREDIT_CARD"])
    assert [(r.entity_type, r.start, r.end) for r in found] == [("CREDIT_CARD", 12, 12 + len(card))]


def test_card_pattern_still_needs_the_luhn_check(analyzer: Any) -> None:
    assert analyzer.analyze("card 2221 0012 3412 3451", language="en", entities=["CREDIT_CARD"]) == []
