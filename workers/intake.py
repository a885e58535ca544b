"""The first hop: requests from the ``GW_REQ`` work queue, taken only as fast as this process works.

A pull consumer with credit: this process asks JetStream for at most ``max_inflight`` requests beyond
those it still works on, and asks again as it hands them on. A request JetStream has not handed out
waits in the stream, where its ``ack_wait`` clock has not started; a request handed out is held by this
process (``workers/leases.py``) from the moment it arrives. So a burst, a backlog or a restart never
puts more requests in a process than it can take, and none of those it took is redelivered while it
lives. Messages are pushed to us as they arrive while a pull request is open (no polling, no added
latency); under load one pull brings many.

Pull requests are plain NATS requests to ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``, each with
an inbox subscription of its own (a delivered message carries its original subject, so only the
subscription tells which pull it answers): the credit is exact. A pull expires after ``expires_s``
(JetStream then sends a 408 status); after a reconnect all are forgotten and asked for again.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("gateway.intake")

STATUS = "Status"
HEARTBEAT = "100"


@dataclass
class _Pull:
    credit: int
    expires_at: float
    sub: Subscription | None = None


class PullIntake:
    def __init__(self, nc: Callable[[], NatsClient], stream: str, consumer: str, on_message: Callable[[Msg], None],
                 *, max_inflight: int = 64, expires_s: float = 10.0) -> None:
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._on_message = on_message
        self.max_inflight = max_inflight
        self.expires_s = expires_s
        self.prefix = ""  # under the connection's own inbox prefix (NATS permissions allow only that), set at start
        self._tokens = itertools.count(1)
        self._open: dict[str, _Pull] = {}
        self.inflight = 0
        self.taken = 0
        self._started = False
        self._stopped = False

    @property
    def credit(self) -> int:
        return sum(pull.credit for pull in self._open.values())

    async def start(self) -> None:
        self.prefix = self._nc().new_inbox()
        self._started = True
        await self._pull()

    async def stop(self) -> None:
        """Take nothing more (requests already taken are finished by their tasks)."""
        self._stopped = True
        for token in list(self._open):
            await self._close(token)

    async def reconnected(self) -> None:
        """After a reconnect the broker may have restarted: every open pull is gone. Ask again."""
        for token in list(self._open):
            await self._close(token)
        await self._pull()

    async def done(self) -> None:
        """A request taken earlier has been handed on (or ended): room for one more."""
        self.inflight = max(0, self.inflight - 1)
        await self._pull()

    def _delivery_handler(self, token: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_delivery(msg: Msg) -> None:
            headers = msg.headers
            if headers is not None and STATUS in headers and not msg.reply:
                status = headers[STATUS]
                if status != HEARTBEAT:  # 408: the pull expired; 409: refused (e.g. consumer limits)
                    if status != "408":
                        log.warning("pull refused by JetStream: %s %s", status, headers.get("Description", ""))
                    await self._close(token)
                    await self._pull()
                return
            pull = self._open.get(token)
            if pull is not None:
                pull.credit -= 1
                if pull.credit <= 0:
                    await self._close(token)
            self.inflight += 1
            self.taken += 1
            self._on_message(msg)
        return on_delivery

    async def _close(self, token: str) -> None:
        pull = self._open.pop(token, None)
        if pull is not None and pull.sub is not None:
            try:
                await pull.sub.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - the connection is gone: so is the subscription
                log.debug("pull unsubscribe failed: %r", exc)

    async def _pull(self) -> None:
        if self._stopped or not self._started:
            return
        now = time.monotonic()
        for token in [t for t, pull in self._open.items() if pull.expires_at < now]:
            await self._close(token)  # expired without its 408 reaching us (e.g. across a reconnect)
        room = self.max_inflight - self.inflight - self.credit
        # one pull at a time while it still has credit; a second only for a large enough batch
        if room <= 0 or (self._open and room < self.max_inflight // 2):
            return
        token = str(next(self._tokens))
        inbox = f"{self.prefix}.{token}"
        pull = self._open[token] = _Pull(room, now + self.expires_s + 1.0)
        request = orjson.dumps({"batch": room, "expires": int(self.expires_s * 1e9)})
        try:
            nc = self._nc()
            pull.sub = await nc.subscribe(inbox, cb=self._delivery_handler(token))
            await nc.publish(self._next_subject, request, reply=inbox)
        except Exception as exc:  # noqa: BLE001 - reconnecting: asked again once reconnected
            await self._close(token)
            log.debug("pull request not sent: %r", exc)
