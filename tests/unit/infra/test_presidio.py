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

OFFLINE_SCRIPT = textwrap.dedent(
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
