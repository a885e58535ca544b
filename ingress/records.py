"""Requests ended by ingress itself (refused at the door, timed out) become ``requests`` rows too.

The record goes to JetStream (``gw.evt.ingress``, captured by ``GW_EVENTS``), de-duplicated by request
id like every record, from a queue of its own: the answer to the caller never waits for it, and a
record made while the broker is restarting is sent once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from nats.aio.client import Client as NatsClient

from infra.tasks import cancel
from schemas import subjects
from schemas.events import RequestCompleted
from schemas.wire import encode

log = logging.getLogger("gateway.ingress")

EVENT_SUBJECT = subjects.event_subject("ingress")
MAX_QUEUED = 100_000
BATCH = 256


class RecordOutbox:
    def __init__(self, nc: Callable[[], NatsClient | None]) -> None:
        self._nc = nc
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, record: RequestCompleted) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("ingress records are piling up (the broker is unreachable): %d dropped", self.dropped)
        self._queue.append((record.request_id, encode(record)))
        self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self, flush_s: float = 3.0) -> None:
        """Send what is queued (briefly), then stop."""
        try:
            await asyncio.wait_for(self._flush_all(), timeout=flush_s)
        except (TimeoutError, Exception):  # noqa: BLE001 - stopping: what is left is lost, logged
            if self._queue:
                log.warning("%d ingress records not sent at shutdown", len(self._queue))
        task, self._task = self._task, None
        await cancel(task)

    async def _flush_all(self) -> None:
        while self._queue:
            if not await self._send_batch():
                await asyncio.sleep(0.2)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if not await self._send_batch():
                    await asyncio.sleep(0.5)  # the broker is away: try again shortly

    async def _send_batch(self) -> bool:
        nc = self._nc()
        if nc is None or not nc.is_connected:
            return False
        js = nc.jetstream()
        batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        results = await asyncio.gather(
            *(js.publish(EVENT_SUBJECT, data, timeout=5.0, headers={"Nats-Msg-Id": rid}) for rid, data in batch),
            return_exceptions=True)
        failed = [item for item, result in zip(batch, results, strict=True) if isinstance(result, BaseException)]
        self._queue.extendleft(reversed(failed))
        return not failed
