"""An in-memory stand-in for a nats-py ``KeyValue`` with the compare-and-set the ledger relies on
(``update(key, value, last=revision)``; ``get`` raising ``KeyNotFoundError``)."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError


@dataclass
class _Entry:
    value: bytes
    revision: int


class FakeKV:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self._seq = 0

    async def get(self, key: str) -> _Entry:
        if key not in self.entries:
            raise KeyNotFoundError
        return self.entries[key]

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        current = self.entries.get(key)
        if (current.revision if current else 0) != (last or 0):
            raise KeyWrongLastSequenceError
        self._seq += 1
        self.entries[key] = _Entry(value, self._seq)
        return self._seq
