"""A bounded LRU + TTL set of request ids the sink has already written to ``requests``.

This is the first line of de-duplication: a ``RequestCompleted`` redelivered by JetStream (sink crash
before ack) or produced twice by a stalled-then-resumed stage must not become a second ``requests``
row. The set is bounded in size (oldest evicted first) and in time (entries expire after ``ttl_s``),
so it covers the redelivery window, not all history; ``ReplacingMergeTree`` on ``requests`` is the
backstop beyond it and across several sinks. After a restart, ``preload`` it from
``Store.recent_request_ids(ttl_s)`` so a redelivery straddling the restart is still caught.

Not thread-safe on its own: the store only touches it under its write lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

DEFAULT_MAX_ENTRIES = 200_000
"""≈ 45 s of traffic at 4,500 req/s, hours at typical rates; ≈ 35 MB (measured: 18 MB set + 17 MB keys)."""
DEFAULT_TTL_S = 900.0
"""Redeliveries arrive after ``ack_wait`` (seconds); 15 minutes leaves a wide margin."""


class DedupeSet:
    """Request ids seen recently. ``key in s`` is O(1); expired keys read as absent."""

    __slots__ = ("_clock", "_entries", "max_entries", "ttl_s")

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        # key -> expiry (clock time). Insertion order == expiry order because ttl_s is constant and
        # add() moves a refreshed key to the end; so expiry and LRU eviction both pop from the front.
        self._entries: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        expiry = self._entries.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._entries[key]
            return False
        return True

    def add(self, key: str) -> None:
        self.add_many((key,))

    def add_many(self, keys: Iterable[str]) -> None:
        now = self._clock()
        expiry = now + self.ttl_s
        entries = self._entries
        for key in keys:
            entries[key] = expiry
            entries.move_to_end(key)
        self._prune(now)

    def preload(self, keys: Iterable[str]) -> int:
        """Add ids read back from ClickHouse (e.g. after a restart); returns how many were new."""
        batch = list(keys)
        new = sum(1 for key in batch if key not in self._entries)
        self.add_many(batch)
        return new

    def clear(self) -> None:
        self._entries.clear()

    def _prune(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        while entries:
            key, expiry = next(iter(entries.items()))
            if expiry > now:
                break
            del entries[key]
