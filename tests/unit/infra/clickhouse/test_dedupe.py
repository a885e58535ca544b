"""The bounded LRU/TTL set of written request ids (pure)."""

from __future__ import annotations

import pytest

from infra.clickhouse.dedupe import DedupeSet


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_add_and_contains() -> None:
    s = DedupeSet(max_entries=10, ttl_s=60)
    s.add("a")
    assert "a" in s
    assert "b" not in s
    assert 42 not in s
    assert len(s) == 1


def test_evicts_oldest_beyond_max_entries() -> None:
    s = DedupeSet(max_entries=3, ttl_s=60)
    s.add_many(["a", "b", "c"])
    s.add("a")  # refresh: now the newest
    s.add("d")
    assert "b" not in s
    assert {"a", "c", "d"} == {k for k in "abcd" if k in s}
    assert len(s) == 3


def test_entries_expire_after_ttl() -> None:
    clock = Clock()
    s = DedupeSet(max_entries=100, ttl_s=10, clock=clock)
    s.add("old")
    clock.now += 5
    s.add("new")
    assert "old" in s
    clock.now += 6
    assert "old" not in s
    assert "new" in s
    clock.now += 5
    s.add("newest")  # pruning on add drops expired entries from the front
    assert len(s) == 1


def test_preload_counts_new_keys() -> None:
    s = DedupeSet(max_entries=100, ttl_s=60)
    s.add("a")
    assert s.preload(["a", "b", "c"]) == 2
    assert all(k in s for k in "abc")
    s.clear()
    assert len(s) == 0


@pytest.mark.parametrize(("max_entries", "ttl_s"), [(0, 1.0), (1, 0.0)])
def test_rejects_bad_bounds(max_entries: int, ttl_s: float) -> None:
    with pytest.raises(ValueError):
        DedupeSet(max_entries=max_entries, ttl_s=ttl_s)
