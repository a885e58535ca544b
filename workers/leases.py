"""The end-to-end ack's leases: which accepted requests this process holds, kept alive while it works.

Every request travels the chain while its JetStream message (``GW_REQ``) stays unacked; JetStream
redelivers it ``ack_wait`` after the last sign of life. A process *holds* a request from the moment the
request reaches it until it has handed it on (forwarded to the next stage) or ended it (acked). While it
holds it, this keeper sends ``+WPI`` (work in progress) to the message's ack subject, so a request that
only waits in a busy but healthy process is never redelivered; a request held by a process that died
gets no more signals and is redelivered after ``ack_wait``: exactly what the dead process held.

One keeper per process, shared by every stage the process hosts. Holding is counted (a request may be
held by two stages of one process for an instant: the next stage took it before the previous one let
go). One timer for the whole process: every ``period`` it signals the requests held since the previous
tick or longer, so a request that passes through in milliseconds costs nothing.

A restarted nats-server may hand out again messages that live processes hold (its consumer state is
written behind; such a message can even come back as a first delivery). So before a redelivered request
runs again, or a first delivery that waited suspiciously long in GW_REQ, it asks every process whether
one holds another delivery of it (``holds_other``, answered on ``gw.ctl.held.<request_id>``): if one
does, it steps aside and the live run finishes the request (JetStream takes the ack or ``+WPI`` of any
delivery of the same message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient

from infra.tasks import cancel

log = logging.getLogger("gateway.leases")

ACK = b"+ACK"
IN_PROGRESS = b"+WPI"


class Leases:
    def __init__(self, nc: Callable[[], NatsClient], ack_wait_s: float) -> None:
        self._nc = nc
        # Four signals per ack_wait: one late or lost signal still leaves two more before redelivery.
        self.period_s = ack_wait_s / 4
        self._held: dict[str, int] = {}
        self._requests: dict[str, str] = {}  # ack subject -> request id, for ``holds_other``
        self._old: set[str] = set()  # held at the previous tick: signalled at this one if still held
        self._task: asyncio.Task[None] | None = None
        self.signals_sent = 0

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, ack_subject: object) -> bool:
        return ack_subject in self._held

    def hold(self, ack_subject: str | None, request_id: str = "") -> None:
        if not ack_subject:
            return
        self._held[ack_subject] = self._held.get(ack_subject, 0) + 1
        if request_id:
            self._requests[ack_subject] = request_id
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="leases")

    def release(self, ack_subject: str | None) -> None:
        if not ack_subject:
            return
        count = self._held.get(ack_subject, 0) - 1
        if count > 0:
            self._held[ack_subject] = count
        else:
            self._held.pop(ack_subject, None)
            self._requests.pop(ack_subject, None)
            self._old.discard(ack_subject)

    async def ack(self, ack_subject: str | None) -> None:
        """End the request for good: ``+ACK`` (JetStream removes it from the work queue), drop the hold."""
        if not ack_subject:
            return
        self._held.pop(ack_subject, None)
        self._requests.pop(ack_subject, None)
        self._old.discard(ack_subject)
        await self._nc().publish(ack_subject, ACK)

    def holds_other(self, request_id: str, ack_subject: str) -> bool:
        """Whether this process holds a delivery of ``request_id`` other than ``ack_subject`` (a live run)."""
        return any(rid == request_id and subject != ack_subject for subject, rid in self._requests.items())

    def tick(self) -> list[str]:
        """The subjects to signal now: those held at the previous tick and still held."""
        due = [s for s in self._old if s in self._held]
        self._old = set(self._held)
        return due

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            due = self.tick()
            if not due:
                continue
            try:
                nc = self._nc()
                for subject in due:
                    await nc.publish(subject, IN_PROGRESS)
                self.signals_sent += len(due)
            except Exception as exc:  # noqa: BLE001 - reconnecting: the next tick signals again
                log.warning("could not send %d in-progress signals (%r); retrying next tick", len(due), exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)


def delivery_of(ack_subject: str) -> int:
    """The delivery count in a JetStream ack subject:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or with a domain and an
    account hash after ``ACK`` and a random token at the end (``$JS.ACK.<domain>.<hash>.<stream>...``)."""
    tokens = ack_subject.split(".")
    try:
        return int(tokens[4 if len(tokens) == 9 else 6])
    except (IndexError, ValueError):
        return 1
