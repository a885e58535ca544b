"""Messages that must be confirmed: a publish whose answer says it arrived (or why it did not).

Core NATS delivers at most once: a message in flight when nats-server dies, or sent to a subject whose
subscriber is reconnecting, is gone without a trace. Where that would lose something (the answer to the
caller, the ``requests`` record, a response handed from the provider stage to the output filter), the
sender asks for a confirmation and tries again until it has one, the receiver is known to be gone, or
the time runs out.

One inbox subscription per process (``<its inbox prefix>.<id>.*``); each confirmed message gets a token and a
future. Unlike nats-py's ``request``, ``send`` puts the message on the wire *before* returning (it only
appends to the client's buffer), so two sends in a row leave in that order, in one write: the record
goes out before the answer that depends on it.

nats-server answers a message sent to a subject nobody subscribes to with a ``503`` status on the reply
inbox ("no responders"): ``NoResponders`` tells that apart from a slow or lost answer (``TimeoutError``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("gateway.confirm")

STATUS = "Status"
NO_RESPONDERS = "503"


class NoResponders(Exception):
    """Nobody subscribes to the subject right now (the receiver is gone, or reconnecting)."""


class Confirmer:
    def __init__(self, nc: Callable[[], NatsClient]) -> None:
        self._nc = nc
        self.prefix = ""  # under the connection's own inbox prefix (the only inboxes NATS lets it read), at start
        self._tokens = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._sub: Subscription | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    async def start(self) -> None:
        self.prefix = self._nc().new_inbox()
        self._sub = await self._nc().subscribe(f"{self.prefix}.*", cb=self._on_answer)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection is closing anyway
                log.debug("inbox unsubscribe failed", exc_info=True)
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()

    async def _on_answer(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject.rsplit(".", 1)[-1], None)
        if future is None or future.done():
            return  # answered after its sender gave up: nobody waits for it any more
        headers = msg.headers
        if headers is not None and headers.get(STATUS) == NO_RESPONDERS and not msg.data:
            future.set_exception(NoResponders(msg.subject))
        else:
            future.set_result(msg)

    async def send(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> asyncio.Future[Msg]:
        """Publish now (appended to the client's buffer before this returns); the future holds the answer
        (``NoResponders`` if nobody subscribes). Await it with a timeout and ``forget`` it on timeout."""
        if self._sub is None:
            await self.start()
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            await self._nc().publish(subject, data, reply=f"{self.prefix}.{token}", headers=headers)
        except BaseException:
            self._waiting.pop(token, None)
            raise
        future.add_done_callback(lambda _f: self._waiting.pop(token, None))
        return future

    async def request(self, subject: str, data: bytes, headers: dict[str, str] | None = None, *,
                      timeout_s: float) -> Msg:
        """One confirmed send: the answer, ``NoResponders`` or ``TimeoutError``."""
        future = await self.send(subject, data, headers)
        return await wait(future, timeout_s)

    async def deliver(self, subject: str, data: bytes, headers: dict[str, str] | None = None, *,
                      attempt_s: float = 2.0, give_up_s: float = 10.0,
                      first: asyncio.Future[Msg] | None = None) -> Msg | None:
        """Send until answered: a lost message or answer is sent again (``attempt_s`` each), nobody
        subscribing is retried after a pause (a receiver reconnecting after a broker restart comes back
        within a second or two). None after ``give_up_s`` without an answer (the receiver is gone).
        ``first``: the future of a send already made (see ``send``)."""
        deadline = time.monotonic() + give_up_s
        pause = 0.05
        future = first
        while True:
            try:
                if future is None:
                    future = await self.send(subject, data, headers)
                return await wait(future, max(0.001, min(attempt_s, deadline - time.monotonic())))
            except NoResponders:
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 0.5)
            except TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001 - the client is reconnecting (buffer full): try again
                log.debug("confirmed send to %s failed: %r", subject, exc)
                await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            future = None
            if time.monotonic() >= deadline:
                return None


async def wait(future: asyncio.Future[Msg], timeout_s: float) -> Msg:
    """The answer within ``timeout_s`` (the future is cancelled, i.e. forgotten, on timeout)."""
    return await asyncio.wait_for(future, timeout=timeout_s)
