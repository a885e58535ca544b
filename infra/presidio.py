"""Builds the presidio analyzer once per process: offline, pattern recognizers only.

Nothing here goes online. ``tldextract`` (used by presidio's email recognizer to check the domain)
would fetch the Public Suffix List over HTTP on first use; ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""``
set before it is imported makes it use the snapshot bundled in the wheel, and ``_keep_tldextract_offline``
also covers the case where something imported it earlier. No spaCy model is loaded: the NLP engine
is presidio's ``NoOpNlpEngine``; since it yields no tokens, context words are matched on the raw text
by ``PrecedingWordsEnhancer`` (same scoring as presidio's lemma enhancer: +0.35, at least 0.4).

``stages/pii.py`` pre-filters texts by conditions derived from exactly the built-in recognizers
registered here (``BUILTIN_ENTITIES``); change both together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from schemas.config import CustomRecognizer

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

# Must precede any import of tldextract (presidio imports it); build_analyzer re-checks.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

LANGUAGE = "en"
BUILTIN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")

_WORD = re.compile(r"\w+")
_CONTEXT_LOOKBACK_CHARS = 120


def _keep_tldextract_offline() -> None:
    """Make the shared tldextract extractor use only its bundled snapshot (or local files)."""
    import tldextract.tldextract as tld

    extractor = tld.TLD_EXTRACTOR
    local = tuple(
        url for url in extractor.suffix_list_urls if not url.lower().startswith(("http:", "https:"))
    )
    if local != tuple(extractor.suffix_list_urls):
        extractor.suffix_list_urls = local
    extractor.fallback_to_snapshot = True


def _context_enhancer() -> Any:
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

    class PrecedingWordsEnhancer(ContextAwareEnhancer):
        """Context words looked up among the words just before a match, in the raw text."""

        def __init__(self) -> None:
            super().__init__(
                context_similarity_factor=0.35,
                min_score_with_context_similarity=0.4,
                context_prefix_count=5,
                context_suffix_count=0,
            )

        def enhance_using_context(
            self,
            text: str,
            raw_results: list[Any],
            nlp_artifacts: Any,
            recognizers: list[Any],
            context: list[str] | None = None,
        ) -> list[Any]:
            if not raw_results:
                return raw_results
            by_id = {recognizer.id: recognizer for recognizer in recognizers}
            extra = [word.lower() for word in context or ()]
            for result in raw_results:
                meta = result.recognition_metadata or {}
                recognizer = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
                if recognizer is None or not recognizer.context:
                    continue
                if meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                    continue
                window = text[max(0, result.start - _CONTEXT_LOOKBACK_CHARS) : result.start]
                words = [w.lower() for w in _WORD.findall(window)[-self.context_prefix_count :]] + extra
                if any(cue.lower() in word for cue in recognizer.context for word in words):
                    score = max(
                        result.score + self.context_similarity_factor, self.min_score_with_context_similarity
                    )
                    result.score = min(score, ContextAwareEnhancer.MAX_SCORE)
            return raw_results

    return PrecedingWordsEnhancer()


def build_analyzer(custom: Sequence[CustomRecognizer] = ()) -> AnalyzerEngine:
    """The analyzer with the built-in pattern recognizers plus the configured regex recognizers.

    Takes ≈1.6 s (imports); build it once per process and share it.
    """
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    _keep_tldextract_offline()

    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    builtin = [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
    ]
    builtin_entities = {e for recognizer in builtin for e in recognizer.supported_entities}
    configured = []
    for spec in custom:
        if spec.entity in builtin_entities:
            raise ValueError(f"custom recognizer entity {spec.entity!r} clashes with a built-in entity")
        configured.append(
            PatternRecognizer(
                supported_entity=spec.entity,
                name=f"custom_{spec.entity.lower()}",
                patterns=[Pattern(name=spec.entity.lower(), regex=spec.pattern, score=spec.score)]
                if spec.pattern is not None else None,
                deny_list=list(spec.deny_list) or None,
                deny_list_score=spec.score,
                context=list(spec.context),
                supported_language=LANGUAGE,
            )
        )

    nlp_engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "no_op"}])
    nlp_engine.load()
    registry = RecognizerRegistry(recognizers=[*builtin, *configured], supported_languages=[LANGUAGE])
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_context_enhancer(),
    )
    # Warm up: loads tldextract's snapshot and compiles every pattern now, not on the first request.
    analyzer.analyze("warm-up: a.b@example.com +1 212 555 0100 10.0.0.1", language=LANGUAGE)
    return analyzer
