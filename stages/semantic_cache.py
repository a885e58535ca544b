"""The semantic cache: an answer reused for a *reworded* prompt, never for a different question.

**What is compared.** Only the last user message (after redaction); everything else that shapes the
answer must be identical: the tenant, the model alias, the system prompt and the earlier turns, tools,
``response_format``, temperature… (their hash is the entry's *scope*). So a semantic hit
is an exact hit on the context and a close one on the question (``stages/cache.py`` ``scope_of``).

**Two tests, both must pass** (``VectorIndex.search``):

1. *Close in meaning*: the cosine of the two questions' embeddings (``stages/embedding.py``) reaches the
   alias's ``cache.similarity``.
2. *Not a small edit* (``compatible``). Embeddings rate a prompt and its one-word edit as near-identical
   ("Convert 100 °C to °F" / "… °F to °C": 0.99), yet such edits are exactly how a user asks a different
   question. So the guard compares the two prompts' words (lower-cased, contractions opened, fillers such
   as "please", "the", "can you" dropped):

   - the numbers (digits and number words, in order) must be the same;
   - the negations (not, no, never, without, except…) must be the same;
   - when most words are shared, what differs must not be a word that carries meaning: an added,
     dropped or replaced word (beyond a typo) means a different question, and the shared words must
     keep their order (``A to B`` vs ``B to A``).

   A rewording that shares few words is left to the embedding.

The index holds, per entry: its vector, the question's normalised words (of the redacted text: placeholders,
never values) and its expiry. ``workers/semantic_index.py`` keeps one per provider replica, fed from the
``GW_CACHE_INDEX`` bucket.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import orjson

from schemas.envelope import Envelope
from stages.cache import question_of
from stages.embedding import DIMENSIONS, Vector

SMALL_EDIT_OVERLAP = 0.5
"""Two prompts sharing at least this share of their words are edits of each other (``compatible``)."""
CANDIDATES = 3
"""How many of the closest entries are tried against the guard."""

_WORD = re.compile(
    r"<[A-Z_]+_\d+>"  # a placeholder, whole
    r"|\d+(?:[.,:/]\d+)*"  # a number (12, 3.5, 9:00, 1/2)
    r"|[^\W\d_]+(?:'[^\W\d_]+)?"  # a word, with its contraction
    r"|(?:[=!<>]=|[<>=])=?"  # a comparison or an equals sign
    r"|(?<=[\w)\]] )[-+*/%^](?= ?[\w(\[])|(?<=[\w)\]])[-+*/%^](?=\d)",  # arithmetic between operands
    re.UNICODE)
OPERATORS = frozenset(("+", "-", "*", "/", "%", "^", "=", "==", "===", "!=", "!==", "<", ">", "<=", ">="))
_CONTRACTIONS = {"n't": " not", "'re": " are", "'s": " is", "'m": " am", "'ll": " will", "'ve": " have",
                 "'d": " would"}
_IRREGULAR = {"can't": "can not", "won't": "will not", "cannot": "can not", "shan't": "shall not"}
FILLER = frozenset("""
a an the please pls plz kindly thanks thank hey hi hello ok okay so just quick question quickly
i me my mine we us our you your yours it its this that these those there here
is are was were be been am do does did can could would will shall may might
to of in on at by for with as and or from into about
tell give show let help need want like know wondering
what which when where who whom whose why how
write compose draft explain describe provide create generate make produce
solve find calculate compute determine
""".split())
"""Words whose presence or absence does not change what is asked: articles, pronouns, auxiliaries,
politeness, question words, and the verbs that only say "answer this" (write, explain, solve…)."""
NEGATIONS = frozenset("not no never without none nothing nobody neither nor except excluding unless".split())
NUMBER_WORDS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                     "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000"})


def words_of(text: str) -> list[str]:
    """The words of a prompt as the guard compares them: lower-cased, contractions opened, number words
    as digits, light plural folding; placeholders (``<EMAIL_ADDRESS_1>``) kept whole."""
    lowered = text.replace("\u2019", "'")
    out: list[str] = []
    for match in _WORD.finditer(lowered):
        token = match.group()
        if token.startswith("<"):
            out.append(token)
            continue
        token = token.lower()
        if token in _IRREGULAR:
            out.extend(_IRREGULAR[token].split())
            continue
        for suffix, expanded in _CONTRACTIONS.items():
            if token.endswith(suffix) and len(token) > len(suffix):
                out.extend((token[: -len(suffix)] + expanded).split())
                break
        else:
            out.append(token)
    return [NUMBER_WORDS.get(w, _singular(w)) for w in out]


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        if word.endswith("ies"):
            return word[:-3] + "y"
        if word.endswith(("ches", "shes", "xes", "sses")):
            return word[:-2]
        return word[:-1]
    return word


def _is_number(word: str) -> bool:
    return word[0].isdigit() or word in OPERATORS



def compatible(asked: list[str], stored: list[str]) -> bool:
    """The guard (module doc): may an answer to ``stored`` answer ``asked``? Both are ``words_of``."""
    numbers_asked, numbers_stored = [w for w in asked if _is_number(w)], [w for w in stored if _is_number(w)]
    if Counter(numbers_asked) != Counter(numbers_stored):
        return False
    a = [w for w in asked if w not in FILLER and w not in NEGATIONS and not _is_number(w)]
    b = [w for w in stored if w not in FILLER and w not in NEGATIONS and not _is_number(w)]
    if not a or not b:
        return a == b
    common = Counter(a) & Counter(b)
    if sum(common.values()) / max(len(a), len(b)) < SMALL_EDIT_OVERLAP:
        return True  # a rewording: the embedding decides
    if numbers_asked != numbers_stored:  # the same numbers, moved: "from 9:00 to 10:30" / "from 10:30 to 9:00"
        return False
    if any(w in NEGATIONS for w in asked) != any(w in NEGATIONS for w in stored):
        return False
    added, dropped = Counter(a) - Counter(b), Counter(b) - Counter(a)
    _cancel_typos(added, dropped)
    if added or dropped:  # a word added, dropped or replaced: asked for something else, more or less
        return False
    return _in_order(a, common) == _in_order(b, common)


def _cancel_typos(added: Counter[str], dropped: Counter[str]) -> None:
    """A word replaced by one a typo away (one letter added, dropped, changed or two swapped, in words of
    five letters or more) is the same word."""
    for word in list(added):
        if len(word) < 5:
            continue
        for other in list(dropped):
            if dropped[other] and added[word] and len(other) >= 5 and _one_edit(word, other):
                added[word] -= 1
                dropped[other] -= 1
    for counter in (added, dropped):
        for word in [w for w, n in counter.items() if n <= 0]:
            del counter[word]


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _in_order(words: list[str], common: Counter[str]) -> list[str]:
    left = Counter(common)
    out = []
    for w in words:
        if left[w] > 0:
            out.append(w)
            left[w] -= 1
    return out


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
    and words, and when it expires (epoch seconds)."""

    key: str
    scope: str
    vector: Vector
    words: tuple[str, ...]
    expires_at: float

    def encode(self) -> bytes:
        return orjson.dumps({"v": 1, "scope": self.scope, "vector": encode_vector(self.vector),
                             "words": list(self.words), "expires_at": self.expires_at})

    @classmethod
    def decode(cls, key: str, data: bytes) -> IndexRecord | None:
        try:
            raw = orjson.loads(data)
            vector = decode_vector(raw["vector"]) if raw.get("v") == 1 else None
            if vector is None:
                return None
            return cls(key, str(raw["scope"]), vector, tuple(str(w) for w in raw["words"]), float(raw["expires_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def index_record(envelope: Envelope, now: float) -> IndexRecord | None:
    """The record the output filter indexes next to an answer it caches: when the provider stage embedded
    the question (semantic mode, a miss or a refresh)."""
    vector = decode_vector(envelope.cache_vector) if envelope.cache_vector and envelope.cache_scope else None
    question = question_of(envelope.body) if vector is not None else None
    if vector is None or question is None:
        return None
    return IndexRecord(envelope.cache_key, envelope.cache_scope, vector, tuple(words_of(question)),
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
class Match:
    key: str
    similarity: float


class VectorIndex:
    """Exact nearest-neighbour search within a scope (a matrix product: a scope holds the entries of one
    system prompt and settings, thousands at most). Not thread-safe: used from the event loop."""

    def __init__(self) -> None:
        self._scopes: dict[str, _Scope] = {}
        self._where: dict[str, str] = {}  # key → scope

    def __len__(self) -> int:
        return len(self._where)

    def add(self, record: IndexRecord) -> None:
        self.remove(record.key)
        self._scopes.setdefault(record.scope, _Scope()).add(record)
        self._where[record.key] = record.scope

    def remove(self, key: str) -> None:
        name = self._where.pop(key, None)
        if name is None:
            return
        scope = self._scopes[name]
        scope.remove(key)
        if not scope.records:
            del self._scopes[name]

    def search(self, scope_name: str, vector: Vector, words: list[str], threshold: float,
               now: float) -> Match | None:
        """The closest entry of ``scope_name`` at or above ``threshold`` whose question the guard accepts
        (of the ``CANDIDATES`` closest); expired entries are dropped on the way."""
        scope = self._scopes.get(scope_name)
        if scope is None:
            return None
        similarities = scope.matrix @ vector
        if len(similarities) > CANDIDATES:
            closest = np.argpartition(-similarities, CANDIDATES)[:CANDIDATES]
            order = closest[np.argsort(-similarities[closest])]
        else:
            order = np.argsort(-similarities)
        expired: list[str] = []
        found: Match | None = None
        for i in order:
            similarity = float(similarities[i])
            if similarity < threshold:
                break
            record = scope.records[int(i)]
            if record.expires_at <= now:
                expired.append(record.key)
                continue
            if compatible(words, list(record.words)):
                found = Match(record.key, similarity)
                break
        for key in expired:
            self.remove(key)
        return found
