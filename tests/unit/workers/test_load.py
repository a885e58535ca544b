"""The load reporter: lag reported while the process holds requests, and an idle process left asleep."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from workers.load import LoadReporter


class RecordingNats:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def publish(self, subject: str, data: bytes) -> None:
        self.sent.append(orjson.loads(data))


async def test_lag_is_reported_while_busy_and_once_when_over() -> None:
    nc = RecordingNats()
    held = [True]
    reporter = LoadReporter(lambda: nc, "stages.0", ["policy"], every_s=0.01, report_over_ms=20,  # type: ignore[arg-type,return-value]
                            active=lambda: held[0], idle_every_s=0.5)
    reporter.start()
    try:
        await asyncio.sleep(0.03)
        time.sleep(0.1)  # the loop is stuck: the next measure is late by ~100 ms
        await asyncio.sleep(0.05)
        assert nc.sent and nc.sent[0]["lag_ms"] >= 50 and nc.sent[0]["stages"] == ["policy"]
        held[0] = False
        await asyncio.sleep(0.1)
        assert nc.sent[-1]["lag_ms"] < 20  # the all-clear, once
        count = len(nc.sent)
        await asyncio.sleep(0.3)
        assert len(nc.sent) == count  # idle: nothing more
    finally:
        await reporter.stop()


async def test_an_idle_process_measures_seldom() -> None:
    nc = RecordingNats()
    reporter = LoadReporter(lambda: nc, "stages.0", ["policy"], every_s=0.01, report_over_ms=20,  # type: ignore[arg-type,return-value]
                            active=lambda: False, idle_every_s=0.2)
    reporter.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.1)  # late, but inside the idle period's sleep: no request waited behind it
        await asyncio.sleep(0.02)
        assert nc.sent == []
    finally:
        await reporter.stop()
