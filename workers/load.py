"""How long a request that arrives now waits in this process before its stage works on it: how late
the event loop runs (measured every ``every_s`` by a sleep that wakes up late by the work queued ahead
of it), or, in a process hosting the first stage, how long the requests it just took waited in the
``GW_REQ`` work queue (``waited``). Reported on ``gw.load.report`` while it matters (above
``report_over_ms``, and once more when it drops back), so ingress can shed load as soon as a queue
builds, before any answer shows it (``ingress/admission.py``). An idle process sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence

import orjson
from nats.aio.client import Client as NatsClient

from infra.tasks import cancel
from schemas import subjects

log = logging.getLogger("gateway.load")


class LoadReporter:
    def __init__(self, nc: Callable[[], NatsClient], process: str, stages: Sequence[str], *, every_s: float = 0.1,
                 report_over_ms: float = 50.0, active: Callable[[], bool] = lambda: True,
                 idle_every_s: float = 1.0, subject: str = subjects.LOAD_REPORT) -> None:
        self._nc = nc
        self.subject = subject
        self._active = active
        self.idle_every_s = idle_every_s
        self._head = {"process": process, "pid": os.getpid(), "stages": list(stages)}
        self.every_s = every_s
        self.report_over_ms = report_over_ms
        self.lag_ms = 0.0
        self._waited_ms = 0.0  # the longest wait in GW_REQ of a request taken this period
        self._reported = False
        self._task: asyncio.Task[None] | None = None

    def waited(self, seconds: float) -> None:
        """A request taken from the work queue now had waited this long since ingress accepted it."""
        self._waited_ms = max(self._waited_ms, seconds * 1000)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="load-report")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # while the process holds no request, measure seldom: an idle loop has no lag to report, and
            # the first request's arrival shows in its wait in GW_REQ (``waited``) anyway
            every_s = self.every_s if self._reported or self._active() else self.idle_every_s
            asked = loop.time()
            await asyncio.sleep(every_s)
            self.lag_ms = max(0.0, (loop.time() - asked - every_s) * 1000, self._waited_ms)
            self._waited_ms = 0.0
            busy = self.lag_ms > self.report_over_ms
            if busy or self._reported:  # while busy, and once when it is over
                self._reported = busy
                try:
                    await self._nc().publish(self.subject,
                                             orjson.dumps({**self._head, "lag_ms": round(self.lag_ms, 1)}))
                except Exception as exc:  # noqa: BLE001 - reconnecting: the next measure reports again
                    log.debug("load report not sent: %r", exc)
