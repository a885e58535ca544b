import json
from typing import Any

from bench.train_judge import DATA, groups_for_training


def _texts(group: dict[str, Any]) -> list[str]:
    return [group["seed"], *group["paraphrases"], *group["near_misses"]]


def _read(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def test_more_adds_the_groups_written_later_each_whole() -> None:
    base, more = groups_for_training(), groups_for_training(more=True)
    extra = _read("semantic_train_more.jsonl")
    assert len(more) == len(base) + len(extra) and extra
    for group in more:
        assert len(group["paraphrases"]) == 2 and len(group["near_misses"]) == 2
        assert all(isinstance(text, str) and text.strip() for text in _texts(group))


def test_no_training_text_is_a_held_out_text() -> None:
    """The judge is measured on the validation set and on groups g101–g200 of the labelled set: none of
    their texts may be trained on (the writers' groups were also kept beyond a cosine of 0.8 of them)."""
    held_out = _read("semantic_validation.jsonl") + _read("semantic_cache_set.jsonl")[100:]
    unseen = {" ".join(text.casefold().split()) for group in held_out for text in _texts(group)}
    trained = [text for group in groups_for_training(more=True) for text in _texts(group)]
    assert not [text for text in trained if " ".join(text.casefold().split()) in unseen]

