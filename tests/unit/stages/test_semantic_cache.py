"""The semantic cache's pure half: the index (scopes, expiry, candidates), its records and the choice
among the judged candidates. The judge itself is tested with the model (``test_embedding.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from msgspec.structs import replace

from schemas.envelope import Envelope
from stages.embedding import DIMENSIONS
from stages.semantic_cache import (
    CANDIDATE_MARGIN,
    CANDIDATES,
    MAX_QUESTION_CHARS,
    PREFILTER,
    Candidate,
    IndexRecord,
    Match,
    VectorIndex,
    best_match,
    decode_vector,
    encode_vector,
    index_record,
    numbers_in,
    restated,
    same_numbers,
)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIMENSIONS).astype(np.float32)
    return v / np.linalg.norm(v)


def test_vectors_round_trip_as_float16() -> None:
    v = unit(1)
    again = decode_vector(encode_vector(v))
    assert again is not None and float(again @ v) > 0.9999
    assert decode_vector("not base64!") is None and decode_vector(encode_vector(v[:10])) is None


def record(key: str, scope: str, vector: np.ndarray, question: str = "What is the capital of France?",
           expires_at: float = 2e9) -> IndexRecord:
    return IndexRecord(key, scope, vector, question, expires_at)


def candidate(stored: IndexRecord, similarity: float) -> Candidate:
    """A candidate as the index hands it out: with its question's numbers."""
    return Candidate(stored, similarity, numbers_in(stored.question))


def test_records_round_trip() -> None:
    r = record("t.a.k1", "t.a.s", unit(2))
    again = IndexRecord.decode("t.a.k1", r.encode())
    assert again is not None and again.scope == "t.a.s" and again.question == r.question
    assert float(again.vector @ r.vector) > 0.9999
    assert IndexRecord.decode("k", b"{}") is None and IndexRecord.decode("k", b"nope") is None
    version_1 = b'{"v": 1, "scope": "s", "vector": "%s", "words": ["x"], "expires_at": 1}' % encode_vector(
        unit(2)).encode()
    assert IndexRecord.decode("k", version_1) is None  # no question to judge: left out of the index
    long = IndexRecord.decode("k", record("k", "s", unit(2), "x" * 10_000).encode())
    assert long is not None and len(long.question) == MAX_QUESTION_CHARS


def test_search_offers_the_closest_of_its_scope_only_closest_first() -> None:
    index = VectorIndex()
    v = unit(3)
    near = v + 0.3 * unit(30)
    near /= np.linalg.norm(near)
    index.add(record("t.a.k1", "s1", v))
    index.add(record("t.a.k2", "s1", near))
    index.add(record("t.a.k3", "s1", -v))  # below the prefilter
    index.add(record("t.a.k4", "s2", v))
    found = index.search("s1", v, now=1.0)
    assert [c.record.key for c in found] == ["t.a.k1", "t.a.k2"]
    assert found[0].similarity == pytest.approx(1.0, abs=1e-3) and PREFILTER <= found[1].similarity < 1.0
    assert index.search("s9", v, now=1.0) == []


def test_search_offers_only_those_close_to_the_closest() -> None:
    index = VectorIndex()
    v = unit(12)
    farther = v + 0.6 * unit(31)  # cosine ≈ 0.86: more than CANDIDATE_MARGIN below the closest
    index.add(record("t.a.k1", "s", v))
    index.add(record("t.a.k2", "s", farther / np.linalg.norm(farther)))
    assert 1.0 - float(v @ farther) / float(np.linalg.norm(farther)) > CANDIDATE_MARGIN
    assert [c.record.key for c in index.search("s", v, now=1.0)] == ["t.a.k1"]


def test_search_offers_at_most_the_closest_few() -> None:
    index = VectorIndex()
    v = unit(9)
    for i in range(10):
        close = v + 0.05 * i * unit(200 + i)
        index.add(record(f"t.a.k{i}", "s", close / np.linalg.norm(close)))
    found = index.search("s", v, now=1.0)
    assert [c.record.key for c in found] == [f"t.a.k{i}" for i in range(CANDIDATES)]


def test_the_best_judged_candidate_at_the_threshold_is_the_match() -> None:
    a, b = record("t.a.a", "s", unit(10)), record("t.a.b", "s", unit(11))
    candidates = [candidate(a, 0.95), candidate(b, 0.7)]
    match = best_match(candidates, [0.6, 0.97], 0.9)
    assert match is not None and match.key == "t.a.b" and match.similarity == 0.97  # the judge, not the cosine
    assert best_match(candidates, [0.6, 0.89], 0.9) is None
    assert best_match([], [], 0.5) is None


def test_expired_and_removed_records_are_not_found() -> None:
    index = VectorIndex()
    v = unit(7)
    index.add(record("t.a.old", "s", v, expires_at=10.0))
    assert index.search("s", v, now=11.0) == []
    assert len(index) == 0  # dropped on the way
    index.add(record("t.a.k", "s", v))
    index.add(record("t.a.k", "s", v))  # replaced, not doubled
    assert len(index) == 1
    index.remove("t.a.k")
    assert len(index) == 0 and index.search("s", v, now=1.0) == []


def test_the_output_filter_indexes_only_an_embedded_question() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "What is <PERSON_1>'s role?"}]}
    base = Envelope(request_id="r", received_at=0.0, deadline=1e12, reply_to="gw.reply.x", model_requested="m",
                    body=body, cache_key="t.a.k", cache_scope="t.a.s", cache_ttl_s=60)
    assert index_record(base, 100.0) is None  # no vector: not embedded
    r = index_record(replace(base, cache_vector=encode_vector(unit(8))), 100.0)
    assert r is not None and r.expires_at == 160.0 and r.question == "What is <PERSON_1>'s role?"


def test_a_scope_grows_and_shrinks_keeping_every_vector_with_its_key() -> None:
    index = VectorIndex()
    vectors = {f"t.a.k{i}": unit(100 + i) for i in range(40)}  # past the first buffer's 16 rows
    for key, v in vectors.items():
        index.add(record(key, "s", v))
    for key in [f"t.a.k{i}" for i in range(0, 40, 3)]:  # removed from the middle: the last takes the place
        index.remove(key)
        del vectors[key]
    assert len(index) == len(vectors)
    for key, v in vectors.items():
        found = index.search("s", v, now=1.0)
        assert found and found[0].record.key == key and found[0].similarity > 0.99


@pytest.mark.parametrize(("asked", "stored", "same"), [
    ("please, what is the capital of France?", "What is the capital of France?", True),
    ("hi! WHAT IS THE CAPITAL OF FRANCE ... thanks", "what is the capital of france", True),
    ("Can you please   explain recursion? Thank you", "can you explain recursion", True),
    ("Write a thank you note to my neighbour", "Write a note to my neighbour", False),
    ("How do I say hello in French?", "How do I say in French?", False),
    ("What is the capital of France?", "What is the capital of Germany?", False),
    ("Convert 100 °F to °C", "Convert 10 °F to °C", False),
    ("Solve for x: 3x - 7 = 22.", "Solve for x: 3x + 7 = 22.", False),
    ("keep n if n % 2 != 0", "keep n if n % 2 == 0", False),
])
def test_a_question_restated_needs_no_judge(asked: str, stored: str, same: bool) -> None:
    candidates = [candidate(record("t.a.other", "s", unit(40), "Something else entirely"), 0.99),
                  candidate(record("t.a.k", "s", unit(41), stored), 0.9)]
    match = restated(asked, candidates)
    assert (match == Match("t.a.k", 1.0)) if same else match is None


def test_only_candidates_with_the_same_numbers_are_judged() -> None:
    def asked(question: str) -> Candidate:
        return candidate(record(f"t.a.{len(question)}", "s", unit(50), question), 0.99)

    stored = [asked("What is the status of order 48213?"), asked("status of order #48213, please"),
              asked("Where is order 48214?"), asked("drill r000047-bejztfai keeps every stage busy"),
              asked("status of order 48213 placed on 3 May")]
    kept = same_numbers("Where is my order 48213?", stored)
    assert [c.record.question for c in kept] == [stored[0].record.question, stored[1].record.question]
    assert same_numbers("drill r000048-qwertyui keeps every stage busy", stored) == []
    assert same_numbers("What is the capital of France?", [asked("capital of France?")])
    assert same_numbers("two to the tenth = ?", [asked("Calculate 2 raised to the 10th power.")])
    assert not same_numbers("two to the twelfth = ?", [asked("Calculate 2 raised to the 10th power.")])


def test_the_index_reads_a_records_numbers_once_and_hands_them_to_its_candidates() -> None:
    index = VectorIndex()
    index.add(record("t.a.k", "s", unit(50), "status of order 48213 placed on 3 May"))
    [found] = index.search("s", unit(50), now=1.0)
    assert found.numbers == numbers_in(found.record.question) == {"48213": 1, "3": 1}
    index.add(record("t.a.k", "s", unit(50), "status of order 48214"))  # replaced: its numbers too
    [found] = index.search("s", unit(50), now=1.0)
    assert found.numbers == {"48214": 1}
    index.remove("t.a.k")
    assert index.search("s", unit(50), now=1.0) == [] and len(index) == 0


@pytest.mark.parametrize(("one", "other"), [
    ("1 acre = ? sq ft", "An acre equals how many square feet?"),
    ("$350k home, 20% down, 30 yr at 6.5%", "a house for $350,000 with 20% down, a 30-year mortgage at 6.5%"),
    ("two to the tenth", "2 raised to the 10th power"),
    ("three-eighths as a decimal", "3/8 as a decimal"),
    ("ELI5 entanglement", "Explain entanglement like I'm five"),
    ("a seven-hour layover", "a 7 hour layover"),
    ("two hundred and fifty grams", "250 grams"),
    ("2 million rows", "2,000,000 rows"),
    ("a dozen eggs", "12 eggs"),
    ("the twenty-fifth anniversary", "the 25th anniversary"),
    ("Which one is faster?", "Which is faster?"),
    ("Which number times itself is one hundred forty-four?", "square root of 144"),
    ("two thousand three hundred and five", "2,305"),
    ("three hundred thousand", "300k"),
    ("twenty-six point two miles", "26.2 miles"),
    ("two point five million", "2.5 million"),
    ("two and a half hours", "2.5 hours"),
    ("closed a $4M seed", "closed a 4 million dollar seed"),
    ("a $1.5bn deal", "a 1.5 billion deal"),
    ("charged twice", "charged 2x"),
])
def test_numbers_are_the_same_however_written(one: str, other: str) -> None:
    assert numbers_in(one) == numbers_in(other)


@pytest.mark.parametrize(("one", "other"), [
    ("order 48213", "order 48214"),
    ("order 00042", "order 42"),  # an id keeps its zeros
    ("release 1.2.3", "release 1.2.4"),
    ("items 1,2,3", "items 1,2,4"),
    ("2 cups", "3 cups"),
    ("two hundred fifty", "two hundred fifteen"),
    ("version 3.11", "version 3.1"),
    ("the third largest", "the fourth largest"),
    ("two thousand three hundred", "2,003 hundred"),
    ("twenty-six point two", "twenty-six point three"),
    ("two and a half", "two"),
    ("charged twice", "charged"),
    ("a 10m walk", "a 10M walk"),  # metres or minutes, not millions
    ("256Mi of memory", "256M rows"),  # a unit after the M is no million
])
def test_different_numbers_stay_different(one: str, other: str) -> None:
    assert numbers_in(one) != numbers_in(other)
