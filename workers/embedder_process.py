"""The semantic cache's embedding model in a process of its own (one per provider replica that uses it).

Why a process and not a thread: an embedding is ~150 numpy calls, each taking the GIL back from the event
loop's thread, which under load holds it for up to the switch interval (5 ms) at every turn. With the
embedder in a thread, ``bench/fault_drill.py --cache semantic`` at 40 requests a second lost 1,195 of
1,800 requests to 503 overload (requests queued over a second); in its own process, none. There the
embedding takes its few milliseconds and the loop never waits on it. The question goes in as text, the
vector comes back as 1,536 bytes; for the judge, the question and its candidates go in, one probability
each comes back.

The child dies with its parent (``PR_SET_PDEATHSIG``), so a provider replica killed with SIGKILL leaves
no embedder behind.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from infra.children import set_parent_death_signal

if TYPE_CHECKING:
    from stages.embedding import SentenceEncoder

_encoder: SentenceEncoder | None = None
ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Set before numpy loads: one BLAS thread. Two would each spin between products, taking a core from the
gateway's other processes on a small machine, for ~15 % less time per embedding."""


def start() -> None:
    """The pool's initializer, in the child: die with the parent, ignore Ctrl-C (the parent stops it),
    one BLAS thread, load the model and the judge (numpy is first imported here)."""
    global _encoder
    set_parent_death_signal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(0)
    for name in ONE_THREAD:
        os.environ[name] = "1"
    from stages.embedding import SentenceEncoder

    _encoder = SentenceEncoder()
    _encoder.judge("ready", ["ready"])  # the judge's adapters load now, not on the first lookup


def encode(text: str) -> bytes:
    """The question's vector as float32 bytes."""
    assert _encoder is not None, "start() runs first (the pool's initializer)"
    return _encoder.encode(text).tobytes()


def judge(question: str, others: list[str]) -> list[float]:
    """The judge's probability, for each of ``others``, that its answer answers ``question``."""
    assert _encoder is not None, "start() runs first (the pool's initializer)"
    return _encoder.judge(question, others)
