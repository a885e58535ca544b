"""The shared ledger: one ``LedgerState`` per limited scope in the ``GW_LEDGER`` KV bucket, changed only
by compare-and-set on the entry's revision, so every replica of every process sees one budget and one
rate window (never per-process counters).

``Ledger.apply(key, op)`` runs a decision ``op(draft) -> result`` on a draft of the entry (the draft
type is the ledger's ``draft`` factory, ``stages.governance.draft.Draft``: the state brought up to date
once, changed in place by each decision, ``dirty`` when there is something to write) and writes the new
state, only if nobody wrote the entry since it was read; on a conflict it reads the entry again and
decides again. Three things keep it fast:

- concurrent operations on one entry in this process are *coalesced*: whoever comes while a write is
  in flight waits for the next batch, and a batch is decided in order on one state and written once;
- a batch works on one draft: each decision is O(1) in the number of holds, the state is copied and
  encoded once per batch;
- the last state written and its revision are kept, so a batch starts without a read when nobody else
  wrote in between (when someone did, the write fails and the entry is read again). A batch that
  changes nothing (a refusal) decided on the kept state is decided again on a fresh read, so a refusal
  is never based on a stale view.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from schemas import subjects
from schemas.errors import ServiceUnavailable
from schemas.governance import LedgerState
from schemas.wire import decode, encode

log = logging.getLogger("gateway.ledger")

T = TypeVar("T")


class Draft(Protocol):
    dirty: bool

    def state(self) -> LedgerState: ...


D = TypeVar("D", bound=Draft)
"""The draft a decision works on (a decision may run again on a fresh draft after a conflict)."""

MAX_ATTEMPTS = 50
_INVALID = re.compile(r"[^-/_=.a-zA-Z0-9]")


def kv_key(key: str) -> str:
    """A ledger key as a valid KV key (characters KV keys may not hold become ``_``)."""
    return _INVALID.sub("_", key)


@dataclass
class _Entry:
    pending: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]] = field(default_factory=list)
    running: bool = False
    state: LedgerState | None = None  # the last state known, with its revision (0: absent)
    revision: int = 0


class Ledger(Generic[D]):
    def __init__(self, kv: KeyValue, draft: Callable[[LedgerState, float], D]) -> None:
        self.kv = kv
        self._draft = draft
        self._entries: dict[str, _Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.writes = 0
        self.conflicts = 0
        self.reads = 0

    @classmethod
    async def open(cls, js: JetStreamContext, draft: Callable[[LedgerState, float], D]) -> Ledger[D]:
        """The ledger over ``GW_LEDGER`` (declared by ``infra.jetstream.declare``)."""
        return cls(await js.key_value(subjects.BUCKET_LEDGER), draft)

    async def read(self, key: str) -> LedgerState:
        """The entry as stored now (a fresh read)."""
        state, _ = await self._fetch(kv_key(key))
        return state

    async def apply(self, key: str, op: Callable[[D], T]) -> T:
        name = kv_key(key)
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _Entry()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry.pending.append((op, future))
        if not entry.running:
            entry.running = True
            task = asyncio.ensure_future(self._run(name, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self, name: str, entry: _Entry) -> None:
        try:
            while entry.pending:
                batch, entry.pending = entry.pending, []
                try:
                    await self._commit(name, entry, batch)
                except Exception as exc:  # noqa: BLE001 - every waiter gets the failure, the cache is dropped
                    entry.state, entry.revision = None, 0
                    log.warning("ledger %s: %s", name, exc)
                    error = exc if isinstance(exc, ServiceUnavailable) else ServiceUnavailable(
                        f"The gateway's ledger is unavailable ({type(exc).__name__}); retry shortly.",
                        code="ledger_unavailable", retry_after_s=1.0)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
        finally:
            entry.running = False

    async def _commit(self, name: str, entry: _Entry,
                      batch: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]]) -> None:
        fresh = entry.state is None
        for attempt in range(MAX_ATTEMPTS):
            if entry.state is None:
                entry.state, entry.revision = await self._fetch(name)
                fresh = True
            draft = self._draft(entry.state, time.time())
            results = [op(draft) for op, _ in batch]
            changed = draft.dirty
            if not changed and not fresh:
                entry.state = None  # decide again on what is stored now
                continue
            if changed:
                state = draft.state()
                try:
                    entry.revision = await self.kv.update(name, encode(state), last=entry.revision)
                except KeyWrongLastSequenceError:
                    self.conflicts += 1
                    entry.state = None
                    if attempt >= 3:
                        await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                    continue
                self.writes += 1
                entry.state = state
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            return
        raise ServiceUnavailable("The gateway's ledger is too busy (compare-and-set kept failing); retry shortly.",
                                 code="ledger_busy", retry_after_s=1.0)

    async def _fetch(self, name: str) -> tuple[LedgerState, int]:
        self.reads += 1
        try:
            got = await self.kv.get(name)
        except KeyNotFoundError as exc:  # absent, or deleted (then its tombstone's revision is the last)
            return LedgerState(), (exc.entry.revision or 0) if exc.entry is not None else 0
        return (decode(got.value, LedgerState) if got.value else LedgerState()), got.revision or 0
