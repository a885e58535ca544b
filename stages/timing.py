"""Stage time on the envelope: how long each stage spent on a request (``stage_ms``)."""

from __future__ import annotations

import time
from typing import Any

from schemas.envelope import Envelope
from schemas.wire import replace


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def with_stage_time(envelope: Envelope, stage: str, started: float, **update: Any) -> Envelope:
    stage_ms = dict(envelope.stage_ms)
    stage_ms[stage] = round(stage_ms.get(stage, 0.0) + elapsed_ms(started), 3)
    return replace(envelope, stage_ms=stage_ms, **update)
