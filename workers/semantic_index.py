"""The semantic cache's side of a provider replica: the embedding model and the in-memory index of cached
questions, fed by watching the ``GW_CACHE_INDEX`` bucket (``stages/semantic_cache.py`` says what is
compared). Every replica holds the whole index; the output filter writes a record next to each answer it
caches, and every replica's watch adds it within milliseconds.

Started on the first request that asks for the semantic cache (or at start when the live config names it):
the model and the judge load (about 1 s) and the watch reads the bucket; until both are ready a request is a miss.
A bucket that cannot be reached is a miss too: the cache never fails a request.

Embeddings and the judge run in a process of their own (``workers/embedder_process.py`` says why not a
thread); a repeated question reuses its vector (``RECENT``). When ``MAX_PENDING`` calls already wait for
that process, the next request skips the semantic lookup (an exact-only miss, not indexed) rather than
queue: the semantic cache never makes the gateway slower than no cache by more than a few calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from typing import TypeVar

import numpy as np
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from schemas import subjects
from stages.embedding import Vector
from stages.semantic_cache import IndexRecord, Match, VectorIndex, best_match, restated, same_numbers
from workers import embedder_process

log = logging.getLogger("gateway.cache")
T = TypeVar("T")

RECENT = 2048
"""Vectors of this many recent questions are kept (a repeated question is not embedded again)."""
MAX_PENDING = 4
"""Calls waiting for the embedder process beyond which a request skips the semantic lookup (an embedding
takes ≈ 8 ms, the judge ≈ 9 ms a short pair and ≈ 90 ms two long prompts)."""


class SemanticIndex:
    def __init__(self, nc: Callable[[], NatsClient]) -> None:
        self._nc = nc
        self.index = VectorIndex()
        self._pool: ProcessPoolExecutor | None = None
        self._encoder_ready = False
        self._pending = 0
        self.skipped = 0  # lookups skipped since start because the embedder was busy
        self._loading: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._loaded = False
        self._recent: OrderedDict[str, Vector] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Questions at the embedder now."""
        return self._pending

    @property
    def ready(self) -> bool:
        return self._encoder_ready and self._loaded

    async def started(self, timeout_s: float = 60.0) -> None:
        """Start, and return once the model is loaded and the index read (a provider replica whose config
        names the semantic cache says it is ready only then)."""
        self.start()
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while not self.ready and loop.time() < until and not (self._loading is not None and self._loading.done()
                                                                and not self._encoder_ready):
            await asyncio.sleep(0.02)

    def start(self) -> None:
        """Load the model and watch the bucket, in the background (idempotent)."""
        if self._loading is None:
            self._loading = asyncio.create_task(self._load(), name="semantic-model")
        if self._watching is None:
            self._watching = asyncio.create_task(self._watch(), name="semantic-index-watch")

    async def _load(self) -> None:
        """Start the embedder process (spawned: never a fork of this process's threads) and wait for its
        model (the first vector)."""
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=embedder_process.start)
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, embedder_process.encode, "ready")
            self._encoder_ready = True
        except Exception as exc:  # noqa: BLE001 - no model: the semantic cache stays a miss, exact still works
            log.error("semantic cache disabled: the embedding model did not load (%s)", exc)

    async def _watch(self) -> None:
        while True:
            try:
                kv = await self._nc().jetstream().key_value(subjects.BUCKET_CACHE_INDEX)
                self._watcher = await kv.watchall()
                async for entry in self._watcher:
                    if entry is None:  # the bucket's current records are all in
                        self._loaded = True
                        continue
                    if entry.operation in ("DEL", "PURGE") or not entry.value:
                        self.index.remove(entry.key)
                        continue
                    record = IndexRecord.decode(entry.key, entry.value)
                    if record is not None:
                        self.index.add(record)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker restarting: watch again
                log.info("semantic cache index watch ended (%r); watching again", exc)
                await asyncio.sleep(1.0)

    async def reconnected(self) -> None:
        """The broker may have restarted and taken the watch consumer with it: watch anew."""
        if self._watching is None:
            return
        await self._stop_watch()
        self._watching = asyncio.create_task(self._watch(), name="semantic-index-watch")

    async def _stop_watch(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watching
            self._watching = None

    async def stop(self) -> None:
        await self._stop_watch()
        if self._loading is not None:
            with contextlib.suppress(Exception):
                await self._loading
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def vector(self, question: str) -> Vector | None:
        """The question's embedding; None until the model is loaded, and while the embedder is busy."""
        self.start()
        cached = self._recent.get(question)
        if cached is not None:
            self._recent.move_to_end(question)
            return cached
        raw = await self._call(embedder_process.encode, question)
        if raw is None:
            return None
        vector: Vector = np.frombuffer(raw, dtype=np.float32)
        self._recent[question] = vector
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        return vector

    async def match(self, scope: str, vector: Vector, question: str, threshold: float) -> Match | None:
        """The cached question of ``scope`` that the judge rates as the same as ``question`` (at or above
        ``threshold``), of the closest few; None when none is, and while the embedder is busy."""
        if not self._loaded:
            return None
        candidates = same_numbers(question, self.index.search(scope, vector, time.time()))
        if not candidates:
            return None
        same = restated(question, candidates)
        if same is not None:
            return same
        scores = await self._call(embedder_process.judge, question, [c.record.question for c in candidates])
        return best_match(candidates, scores, threshold) if scores is not None else None

    async def _call(self, function: Callable[..., T], *args: object) -> T | None:
        """``function(*args)`` in the embedder process; None while it is busy (``MAX_PENDING``) or starting,
        and when it died (another is started)."""
        if not self._encoder_ready or self._pool is None or self._pending >= MAX_PENDING:
            self.skipped += self._encoder_ready
            return None
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        except BrokenExecutor:  # the embedder process died: start another
            log.warning("semantic cache: the embedder process died; starting another")
            self._encoder_ready = False
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._loading = asyncio.create_task(self._load(), name="semantic-model")
            return None
        finally:
            self._pending -= 1
