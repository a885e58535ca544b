"""The packaged all-MiniLM-L6-v2 run in numpy gives the model's own reference similarities (the
sentence-transformers model card's examples), so the forward pass, the tokenizer and the pooling are
the model's; the judge read through the same forward pass gives its trained scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from stages.embedding import DIMENSIONS, JUDGE_FILES, SentenceEncoder


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.mark.parametrize(("a", "b", "reference"), [
    ("The cat sits outside", "The dog plays in the garden", 0.2838),
    ("A man is playing guitar", "A woman watches TV", -0.0327),
    ("The new movie is awesome", "The new movie is so great", 0.8939),
])
def test_reference_similarities(encoder: SentenceEncoder, a: str, b: str, reference: float) -> None:
    assert float(encoder.encode(a) @ encoder.encode(b)) == pytest.approx(reference, abs=0.001)


def test_vectors_are_unit_float32(encoder: SentenceEncoder) -> None:
    vector = encoder.encode("What is the capital of France?")
    assert vector.shape == (DIMENSIONS,) and vector.dtype == np.float32
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


def test_text_is_not_padded_and_a_long_text_is_cut(encoder: SentenceEncoder) -> None:
    assert len(encoder.tokens("hello")) == 3  # [CLS] hello [SEP], not 128 padded word pieces
    assert len(encoder.tokens("word " * 1000)) == 128
    assert encoder.encode("word " * 1000).shape == (DIMENSIONS,)


@pytest.mark.parametrize("adapters", JUDGE_FILES, ids=lambda path: path.stem)
def test_each_judge_gives_the_trained_models_scores(adapters: Path) -> None:
    """The numpy judge (float16 adapters over the packaged model) gives what the torch model gave when it was
    trained (``bench/train_judge.py`` writes 16 of its scores beside the adapters)."""
    alone = SentenceEncoder(judge_files=(adapters,))
    reference = json.loads(adapters.with_suffix(".check.json").read_text())
    assert len(reference) == 16
    for case in reference:
        assert alone.judge(case["question"], [case["other"]])[0] == pytest.approx(case["torch"], abs=0.02)


def test_the_judges_score_is_the_mean_of_their_log_odds(encoder: SentenceEncoder) -> None:
    question, other = "How many cups are in a gallon?", "1 gallon = ? cups"
    odds = [math.log(p / (1 - p)) for p in
            (SentenceEncoder(judge_files=(path,)).judge(question, [other])[0] for path in JUDGE_FILES)]
    assert encoder.judge(question, [other])[0] == pytest.approx(1 / (1 + math.exp(-sum(odds) / len(odds))), abs=1e-4)


def test_the_judge_tells_a_rewording_from_another_question(encoder: SentenceEncoder) -> None:
    same, *others = encoder.judge("Convert 100 degrees Fahrenheit to Celsius.", [
        "how many degrees C is 100 F",
        "Convert 100 degrees Celsius to Fahrenheit.",
        "Convert 10 degrees Fahrenheit to Celsius.",
        "Convert 100 degrees Fahrenheit to Kelvin.",
    ])
    assert same > max(others)
    assert encoder.judge("What is the capital of France?", []) == []
