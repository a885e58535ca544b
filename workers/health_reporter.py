"""The provider side of live per-target health: ``HealthReporter`` counts and reports every attempt.

``begin``/``end`` around every attempt are plain counter updates; a background task publishes one
aggregated report on ``gw.health.report`` (core NATS, fan-out) every 100 ms when something changed
(at least every second while calls are in flight, as a keepalive), and at once when a probe ended.
The report's format is in ``workers/health_wire.py``; the routing replicas' ``HealthMonitor``
(``workers/health_monitor.py``) reads it. An idle reporter sleeps until the next call begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import orjson

from infra.tasks import cancel
from schemas import subjects
from stages.health import Outcome
from workers.health_wire import REPORT_INTERVAL_S, REPORT_VERSION, NatsSource, connection

log = logging.getLogger("gateway.health")

KEEPALIVE_S = 1.0


class _Counts:
    __slots__ = ("ok", "fail", "ms_sum", "ms_n", "inflight", "dirty")

    def __init__(self) -> None:
        self.ok = 0
        self.fail = 0
        self.ms_sum = 0.0
        self.ms_n = 0
        self.inflight = 0
        self.dirty = False


class HealthReporter:
    """Counts every attempt of this provider replica; publishes aggregates in the background.

    ``begin``/``end`` never await and never publish: a few dict and attribute updates."""

    def __init__(self, nc: NatsSource, reporter_id: str, *, interval_s: float = REPORT_INTERVAL_S,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        self._nc = nc
        self._id = reporter_id
        self._boot = secrets.token_hex(4)
        self._interval = interval_s
        self._keepalive = keepalive_s
        self._counts: dict[str, _Counts] = {}
        self._probes: list[list[Any]] = []
        self._dirty = False
        self._inflight = 0
        self._seq = 0
        self._last_sent = 0.0
        self._wake = asyncio.Event()
        self._asleep = False
        self._task: asyncio.Task[None] | None = None

    def begin(self, target_id: str) -> None:
        c = self._counts.get(target_id)
        if c is None:
            c = self._counts[target_id] = _Counts()
        c.inflight += 1
        c.dirty = True
        self._inflight += 1
        self._dirty = True
        if self._asleep:  # the first call after a quiet spell wakes the reporter
            self._asleep = False
            self._wake.set()

    def end(self, target_id: str, outcome: Outcome, ms: float, probe: bool = False) -> None:
        c = self._counts.get(target_id)
        if c is None:
            c = self._counts[target_id] = _Counts()
        if c.inflight > 0:
            c.inflight -= 1
            self._inflight -= 1
        c.dirty = True
        self._dirty = True
        if probe:
            self._probes.append([target_id, outcome, round(ms, 3)])
            self._wake.set()
        elif outcome == "ok":
            c.ok += 1
            c.ms_sum += ms
            c.ms_n += 1
        elif outcome == "fail":
            c.fail += 1

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"health-reporter-{self._id}")

    async def stop(self) -> None:
        """Stop the loop and publish what is left."""
        task, self._task = self._task, None
        await cancel(task)
        await self.flush()

    async def _run(self) -> None:
        while True:
            if not self._dirty and not self._inflight and not self._probes:
                # nothing to report and no call in flight: sleep until the next call begins (an idle
                # gateway wakes no process)
                self._asleep = True
                await self._wake.wait()  # left set: what woke it is reported at once
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    def report(self) -> bytes | None:
        """The next report, or ``None`` when there is nothing to say; resets the counts."""
        now = time.monotonic()
        keepalive = self._inflight > 0 and now - self._last_sent >= self._keepalive
        if not self._dirty and not self._probes and not keepalive:
            return None
        targets: dict[str, list[Any]] = {}
        for target_id, c in self._counts.items():
            if c.dirty or c.inflight > 0:
                targets[target_id] = [c.ok, c.fail, round(c.ms_sum, 3), c.ms_n, c.inflight]
                c.ok = c.fail = c.ms_n = 0
                c.ms_sum = 0.0
                c.dirty = False
        probes, self._probes = self._probes, []
        self._dirty = False
        self._seq += 1
        self._last_sent = now
        return orjson.dumps({"v": REPORT_VERSION, "reporter": self._id, "boot": self._boot, "seq": self._seq,
                             "targets": targets, "probes": probes})

    async def flush(self) -> None:
        payload = self.report()
        if payload is None:
            return
        try:
            await connection(self._nc).publish(subjects.HEALTH_REPORT, payload)
        except Exception:  # a lost report only blurs the statistics; never break the loop
            log.warning("health report not published", exc_info=True)
