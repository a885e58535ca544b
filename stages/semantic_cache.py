"""The semantic cache: an answer reused for a *reworded* prompt, never for a different question.

**What is compared.** Only the last user message (after redaction); everything else that shapes the
answer must be identical: the tenant, the model alias, the system prompt and the earlier turns, tools,
``response_format``, temperature… (their hash is the entry's *scope*). So a semantic hit is an exact hit
on the context and a judged one on the question (``stages/cache.py`` ``scope_of``).

**Two steps.**

1. *Candidates* (``VectorIndex.search``): the (up to ``CANDIDATES``) cached questions of the scope whose
   embeddings (``stages/embedding.py``) are closest to the new one's, down to a cosine of ``PREFILTER``
   and within ``CANDIDATE_MARGIN`` of the closest. A matrix product over the scope: microseconds.
2. *The judge* (``SentenceEncoder.judge``): the same model read as a cross-encoder, the two questions in
   one input, trained on paraphrases and near-misses (``bench/train_judge.py``), gives the probability
   that one answer answers both. The best candidate at or above the alias's ``cache.similarity`` is the
   hit. Only candidates with the same numbers are judged (``same_numbers``: the judge reads "order
   48213" and "order 48214" as the same question); one that is the question itself but for case,
   punctuation, spacing and politeness (``restated``) is a hit without the judge.

Why a judge and not the cosine: embeddings rate a prompt and its one-word edit as near-identical
("Convert 100 °C to °F" / "… °F to °C": 0.99) and a true rewording lower, so no cosine threshold
separates them (on our labelled set, near-misses score *higher* than paraphrases). A word-level guard
over the cosine (same numbers, negations, no added word) held false hits down but refused most
rewordings: 5 % of paraphrases hit at 0 % false. The judge reads both questions together, so "to °F"
against "to °C" is a different question while "tallest mountain in Africa" against "highest peak on the
African continent" is the same one.

The index holds, per entry: its vector, the question (the redacted text: placeholders, never values)
and its expiry. ``workers/semantic_index.py`` keeps one per provider replica, fed from the
``GW_CACHE_INDEX`` bucket.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import orjson

from schemas.envelope import Envelope
from stages.cache import question_of
from stages.embedding import DIMENSIONS, Vector

CANDIDATES = 3
"""How many of the closest cached questions the judge reads, at most."""
CANDIDATE_MARGIN = 0.05
"""...and only those within this cosine of the closest: the judge costs ≈ 9 ms a short pair, ≈ 90 ms two
long prompts, and on our validation set the right question was the closest in 198 of 200 lookups."""
PREFILTER = 0.3
"""The cosine below which a cached question is not a candidate at all (a rewording that shares no word
still scores above it; a question on another subject below)."""
MAX_QUESTION_CHARS = 4000
"""A record keeps this much of its question: the judge reads at most 256 word pieces of the two."""


def encode_vector(vector: Vector) -> str:
    """A vector for the envelope and the index bucket: float16, base64 (768 bytes → 1,024 characters)."""
    return base64.b64encode(vector.astype(np.float16).tobytes()).decode()


def decode_vector(text: str) -> Vector | None:
    try:
        raw = np.frombuffer(base64.b64decode(text), dtype=np.float16)
    except (ValueError, TypeError):
        return None
    return raw.astype(np.float32) if raw.shape == (DIMENSIONS,) else None


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """One entry of the semantic index: the cache key of its answer, its scope, its question's vector
    and text (redacted), and when it expires (epoch seconds)."""

    key: str
    scope: str
    vector: Vector
    question: str
    expires_at: float

    def encode(self) -> bytes:
        return orjson.dumps({"v": 2, "scope": self.scope, "vector": encode_vector(self.vector),
                             "question": self.question[:MAX_QUESTION_CHARS], "expires_at": self.expires_at})

    @classmethod
    def decode(cls, key: str, data: bytes) -> IndexRecord | None:
        """None for what is not a record of this version (a version 1 record held no question: its answer
        stays an exact-cache entry)."""
        try:
            raw = orjson.loads(data)
            vector = decode_vector(raw["vector"]) if raw.get("v") == 2 else None
            if vector is None:
                return None
            return cls(key, str(raw["scope"]), vector, str(raw["question"]), float(raw["expires_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def index_record(envelope: Envelope, now: float) -> IndexRecord | None:
    """The record the output filter indexes next to an answer it caches: when the provider stage embedded
    the question (semantic mode, a miss or a refresh)."""
    vector = decode_vector(envelope.cache_vector) if envelope.cache_vector and envelope.cache_scope else None
    question = question_of(envelope.body) if vector is not None else None
    if vector is None or question is None:
        return None
    return IndexRecord(envelope.cache_key, envelope.cache_scope, vector, question[:MAX_QUESTION_CHARS],
                       now + envelope.cache_ttl_s)


@dataclass(slots=True)
class _Scope:
    """One scope's entries: their vectors in the first ``len(records)`` rows of ``buffer`` (grown by
    doubling, so adding one is O(1) amortised), a removed one replaced by the last."""

    records: list[IndexRecord] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    buffer: Vector = field(default_factory=lambda: np.zeros((16, DIMENSIONS), dtype=np.float32))

    @property
    def matrix(self) -> Vector:
        return self.buffer[: len(self.records)]

    def add(self, record: IndexRecord) -> None:
        n = len(self.records)
        if n == len(self.buffer):
            grown = np.zeros((2 * n, DIMENSIONS), dtype=np.float32)
            grown[:n] = self.buffer
            self.buffer = grown
        self.buffer[n] = record.vector
        self.records.append(record)
        self.position[record.key] = n

    def remove(self, key: str) -> None:
        i = self.position.pop(key)
        last = self.records.pop()
        if i < len(self.records):  # the last takes the removed one's place
            self.buffer[i] = self.buffer[len(self.records)]
            self.records[i] = last
            self.position[last.key] = i


@dataclass(frozen=True, slots=True)
class Candidate:
    record: IndexRecord
    similarity: float
    """The cosine of the two questions' embeddings."""
    numbers: Counter[str]
    """The cached question's numbers (``numbers_in``), read once when the index took the record."""


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    similarity: float
    """The judge's probability that one answer answers both questions."""


def same_numbers(question: str, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates whose numbers (amounts, dates, order numbers, ids: ``numbers_in``) are those of
    ``question``, as many times each. The judge reads two questions that differ only in an id as the same
    question; such a pair must never share an answer."""
    asked = numbers_in(question)
    return [c for c in candidates if c.numbers == asked]


def numbers_in(text: str) -> Counter[str]:
    """The numbers a question names, however written: "2" and "two", "350k" and "350,000", "$4M" and
    "4 million dollars", "one hundred forty-four" and "144", "twenty-six point two" and "26.2", "two and a
    half" and "2.5", "twice" and "2x", "tenth" and "10th", "three-eighths" and "3/8" are the same numbers.
    A run of digits keeps its leading zeros (an id); the number 1 is left out ("a gallon" is "1 gallon",
    "which one" is no number, "WW1" is "World War I")."""
    return _NumberReader().read(_NUMBER_TOKEN.findall(unicodedata.normalize("NFKC", text)))


class _NumberReader:
    """Reads a number written in words as its parts: ``large``, what the thousands, millions and
    billions already add up to, and ``small``, the part below a thousand being read ("two million
    *three hundred forty-five*")."""

    def __init__(self) -> None:
        self.found: Counter[str] = Counter()
        self.large: Decimal | None = None  # None: no number being read
        self.small = Decimal(0)
        self.addable = 0  # a number word below this adds to the part being read ("twenty" "five")
        self.decimals: str | None = None  # the digits read after "point"

    def read(self, tokens: list[str]) -> Counter[str]:
        i = 0
        while i < len(tokens):
            raw = tokens[i]
            token = raw.casefold()
            if raw[0].isdigit():
                self.digits(raw)
            elif self.decimals is not None and _CARDINALS.get(token, 10) < 10:
                self.decimals += str(_CARDINALS[token])
            elif token in _CARDINALS:
                self.word(_CARDINALS[token])
            elif token in _SCALES:
                self.scale(_SCALES[token])
            elif token == "point" and self.large is not None and self.decimals is None:
                self.decimals = ""
            elif (token == "and" and self.large is not None
                  and [t.casefold() for t in tokens[i + 1:i + 3]] == ["a", "half"]):
                self.small += Decimal("0.5")
                self.addable = 0
                i += 2
            elif token == "and" and self.addable >= 100:  # "two hundred and fifty"
                pass
            elif token in _ORDINALS:
                self.word(_ORDINALS[token])
                self.flush()
            elif token in _TIMES:
                self.flush()
                self.found[str(_TIMES[token])] += 1
            else:
                self.flush()
            i += 1
        self.flush()
        return self.found

    def digits(self, token: str) -> None:
        number, multiplier = token, Decimal(1)
        for suffix, scale in _SUFFIXES.items():
            if token.endswith(suffix):
                number, multiplier = token.removesuffix(suffix), Decimal(scale)
        # "350,000" is one number; "1,2,3" is three
        for part in [number] if _THOUSANDS.fullmatch(number) else number.split(","):
            self.flush()
            if (part.startswith("0") and part.isdigit() and len(part) > 1) or part.count(".") > 1:
                self.found[part] += 1  # an id or a version: "00042" is not "42"; "1.2.3"
            else:
                self.large, self.small = Decimal(0), Decimal(part.replace(",", "")) * multiplier

    def word(self, n: int) -> None:
        if self.large is not None and n < self.addable:
            self.small += n
        else:
            self.flush()
            self.large, self.small = Decimal(0), Decimal(n)
        self.addable = 10 if 20 <= n < 100 else 0  # a ten: "forty" "four"

    def scale(self, scale: int) -> None:
        if self.large is None:
            self.large, self.small = Decimal(0), Decimal(1)
        self.take_decimals()  # "two point five million"
        if scale == 100:
            self.small = (self.small or Decimal(1)) * scale
        else:
            self.large += (self.small or Decimal(1)) * scale
            self.small = Decimal(0)
        self.addable = scale

    def take_decimals(self) -> None:
        if self.decimals:
            self.small += Decimal("0." + self.decimals)
        self.decimals = None

    def flush(self) -> None:
        if self.large is not None:
            self.take_decimals()
            value = self.large + self.small
            if value != 1:
                self.found[_written(value)] += 1
        self.large, self.small, self.addable, self.decimals = None, Decimal(0), 0, None


def _written(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")


_NUMBER_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:(?:[kK]|M|bn)(?![^\W\d_]))?|[^\W\d_]+")
"""Runs of digits (with a decimal point, thousands separators, a "k", "M" or "bn") and runs of letters."""
_SUFFIXES = {"k": 1000, "K": 1000, "M": 1_000_000, "bn": 1_000_000_000}
"""A capital M only: "10m" is ten metres or minutes, "250m" a quarter of a CPU."""
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_CARDINALS = {word: n for n, word in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)} | {"dozen": 12}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
_TIMES = {"twice": 2, "thrice": 3}
_ORDINAL_UNITS = ("third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
                  "fifteenth sixteenth seventeenth eighteenth nineteenth").split()
_ORDINALS = ({w: 3 + i for i, w in enumerate(_ORDINAL_UNITS)} | {w + "s": 3 + i for i, w in enumerate(_ORDINAL_UNITS)}
             | {w.removesuffix("y") + "ieth": 20 + 10 * i for i, w in enumerate(_TENS)})
"""From "third" ("first" and "second" are mostly not numbers: "first, ...", "a second"); with their
plurals, the fractions' denominators ("three-eighths")."""


def restated(question: str, candidates: list[Candidate]) -> Match | None:
    """The candidate that is ``question`` itself but for case, sentence punctuation, spacing and politeness
    ("please", "thanks", "hi"…): a hit without the judge, scored 1.0. The judge, trained on rewordings
    against one-word edits, rates such near-copies too low (0.4–0.9 for "please, X?" against "X")."""
    asked = _plain(question)
    for c in candidates:
        if _plain(c.record.question) == asked:
            return Match(c.record.key, 1.0)
    return None


_TOKEN = re.compile(r"\w+|[^\w\s.,!?;:'\"…¿¡]")
"""Words, and every symbol but sentence punctuation ("3x + 7" is not "3x - 7", "!=" is not "==")."""
POLITE = frozenset(("please", "pls", "plz", "kindly"))
"""Dropped anywhere."""
GREETINGS = frozenset(("hi", "hello", "hey"))
"""Dropped at the start only ("say hello in French" keeps it)."""
THANKS = (("thanks",), ("thx",), ("thank", "you"), ("ty",))
"""Dropped at the end only ("write a thank you note" keeps it)."""


def _plain(text: str) -> list[str]:
    words = [w for w in _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()) if w not in POLITE]
    while words and words[0] in GREETINGS:
        words.pop(0)
    trimmed = True
    while trimmed:
        trimmed = False
        for tail in THANKS:
            if len(words) > len(tail) and tuple(words[-len(tail):]) == tail:
                del words[-len(tail):]
                trimmed = True
    return words


def best_match(candidates: list[Candidate], scores: list[float], threshold: float) -> Match | None:
    """The candidate the judge rates highest, if at or above ``threshold``."""
    judged = [(score, c.record.key) for c, score in zip(candidates, scores, strict=True) if score >= threshold]
    if not judged:
        return None
    score, key = max(judged)
    return Match(key, score)


class VectorIndex:
    """Exact nearest-neighbour search within a scope (a matrix product: a scope holds the entries of one
    system prompt and settings, thousands at most). Not thread-safe: used from the event loop."""

    def __init__(self) -> None:
        self._scopes: dict[str, _Scope] = {}
        self._where: dict[str, str] = {}  # key → scope
        self._numbers: dict[str, Counter[str]] = {}  # key → its question's numbers: read here, not per lookup

    def __len__(self) -> int:
        return len(self._where)

    def add(self, record: IndexRecord) -> None:
        self.remove(record.key)
        self._scopes.setdefault(record.scope, _Scope()).add(record)
        self._where[record.key] = record.scope
        self._numbers[record.key] = numbers_in(record.question)

    def remove(self, key: str) -> None:
        name = self._where.pop(key, None)
        if name is None:
            return
        del self._numbers[key]
        scope = self._scopes[name]
        scope.remove(key)
        if not scope.records:
            del self._scopes[name]

    def search(self, scope_name: str, vector: Vector, now: float) -> list[Candidate]:
        """The ``CANDIDATES`` entries of ``scope_name`` closest to ``vector`` (cosine ≥ ``PREFILTER`` and
        within ``CANDIDATE_MARGIN`` of the closest), closest first; expired entries are dropped on the way."""
        scope = self._scopes.get(scope_name)
        if scope is None:
            return []
        similarities = scope.matrix @ vector
        if len(similarities) > CANDIDATES:
            closest = np.argpartition(-similarities, CANDIDATES)[:CANDIDATES]
            order = closest[np.argsort(-similarities[closest])]
        else:
            order = np.argsort(-similarities)
        expired: list[str] = []
        found: list[Candidate] = []
        floor = max(PREFILTER, float(similarities[order[0]]) - CANDIDATE_MARGIN) if len(order) else PREFILTER
        for i in order:
            similarity = float(similarities[i])
            if similarity < floor:
                break
            record = scope.records[int(i)]
            if record.expires_at <= now:
                expired.append(record.key)
                continue
            found.append(Candidate(record, similarity, self._numbers[record.key]))
        for key in expired:
            self.remove(key)
        return found
