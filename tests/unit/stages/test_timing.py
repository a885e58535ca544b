"""Stage time on the envelope: recorded per stage, accumulated over reruns of one stage (pure)."""

from __future__ import annotations

import time
import types

import pytest

from schemas.envelope import Envelope
from schemas.wire import convert
from stages import timing
from stages.timing import elapsed_ms, with_stage_time


def make_envelope(**update: object) -> Envelope:
    values: dict[str, object] = {"request_id": "r1", "received_at": 1_700_000_000.0, "deadline": 1_700_000_120.0,
                                 "reply_to": "gw.reply.ing.r", "model_requested": "m",
                                 "body": {"model": "m", "messages": []}}
    values.update(update)
    return convert(values, Envelope)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A frozen perf counter for stages.timing."""
    fake = types.SimpleNamespace(perf=100.0)
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: fake.perf))
    return fake


def test_elapsed_ms(clock: types.SimpleNamespace) -> None:
    clock.perf = 100.25
    assert elapsed_ms(100.0) == 250.0


def test_with_stage_time_records_and_accumulates(clock: types.SimpleNamespace) -> None:
    env = make_envelope(stage_ms={"redaction": 2.0})
    clock.perf = 100.0125
    once = with_stage_time(env, "policy", 100.0)
    assert once.stage_ms == {"redaction": 2.0, "policy": 12.5}
    clock.perf = 200.001
    twice = with_stage_time(once, "policy", 200.0, tenant="acme")
    assert twice.stage_ms["policy"] == 13.5
    assert twice.tenant == "acme"
    assert env.stage_ms == {"redaction": 2.0}  # the input envelope is untouched
    assert once.stage_ms["policy"] == 12.5


def test_with_stage_time_real_clock() -> None:
    env = with_stage_time(make_envelope(), "routing", time.perf_counter())
    assert 0 <= env.stage_ms["routing"] < 1_000
