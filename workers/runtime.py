"""What every stage worker shares: the hot path around the pure stage logic.

``accept`` takes a message as soon as it arrives: decode the envelope, *hold* the request (the end-to-end
ack's lease, ``workers/leases.py``), and work on it in a task of its own, so nothing waits unheld in a
queue while the process is busy. ``run`` refuses an envelope whose deadline passed, times the stage,
turns any exception into a typed error answered to the caller, and lets go of the request when the
stage is done with it (forwarded, handed over, or ended).

Ending a request (``finish``) is one function for every stage: settle a governed request's reservations
on the shared ledger (``WorkerContext.settle``: before anything leaves, so an answered request is a
settled one), publish the ``RequestCompleted`` record (JetStream, de-duplicated by request id) and then
the answer, in that order and in one write;
then, in the background, wait until JetStream stored the record and ingress confirmed the answer
(sending either again after a broker restart), and only then ack the request's JetStream message. A
process that dies anywhere before the ack leaves the request unacked and unheld: JetStream redelivers it
after ``ack_wait`` and its rerun first asks ingress what the caller already has (``check_rerun``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from schemas import control, subjects
from schemas.control import IngressState, ReplyAck
from schemas.envelope import Envelope, Reply
from schemas.errors import ClientGone, DeadlineExceeded, ErrorInfo, GatewayError, InternalError
from schemas.events import EventType, RequestCompleted, StageAttrs, StageEvent
from schemas.ids import uuid7
from schemas.wire import JSONObject, decode, encode, replace
from workers.context import WorkerContext
from workers.leases import delivery_of

log = logging.getLogger("gateway")

Work = Callable[[Envelope, float], Awaitable[None]]

REPLY_GIVE_UP_S = 10.0
"""How long an answer is offered to an ingress that does not subscribe (reconnecting after a broker
restart takes a second or two; after this long it is gone, and so is its caller)."""
CHECK_GIVE_UP_S = 5.0
HELD_TIMEOUT_S = 0.25
"""How long a rerun waits for a process to say it holds another, live run of the request."""
STALE_S = 1.0
"""A first delivery that waited this long in GW_REQ may be one a restarted broker handed out again:
it asks whether a live run holds it before it runs (a request normally waits milliseconds)."""
MAX_RUNS = 3
"""A request whose chain died this many times is not run again: it is answered with an error (a request
that kills the process handling it must not take every replica down in turn)."""


class StageRuntime:
    def __init__(self, ctx: WorkerContext, stage: str) -> None:
        self.ctx = ctx
        self.stage = stage
        self.event_subject = subjects.event_subject(stage)
        self.governed_subject = subjects.governed_event_subject(stage)  # records the ledger settles
        self.leases = ctx.leases
        self.confirmer = ctx.confirmer
        self._tasks: set[asyncio.Task[None]] = set()
        ctx.gauges[f"{stage}.tasks"] = lambda: len(self._tasks)

    @property
    def nc(self) -> NatsClient:
        return self.ctx.nc

    # -- taking requests --------------------------------------------------------------------------

    def accept(self, data: bytes, work: Work, *, ack_subject: str | None = None,
               then: Callable[[], Awaitable[None]] | None = None) -> Envelope | None:
        """Take a request now (decode, hold) and work on it in its own task. The first stage passes the
        JetStream message's ack subject; later stages find it in the envelope. ``then`` runs once the
        stage is done with the request, however that ended."""
        started = time.perf_counter()
        try:
            envelope = decode(data, Envelope)
        except Exception:  # a message we cannot read has no caller we could answer
            log.exception("%s: undecodable envelope dropped", self.stage)
            if ack_subject:
                self.spawn(self.leases.ack(ack_subject))
            return None
        return self.take(envelope, work, started, ack_subject=ack_subject, then=then)

    def take(self, envelope: Envelope, work: Work, started: float, *, ack_subject: str | None = None,
             then: Callable[[], Awaitable[None]] | None = None) -> Envelope:
        """``accept`` for an envelope already read (the first stage opens its sealed request first)."""
        if ack_subject is not None:
            envelope = replace(envelope, delivery=delivery_of(ack_subject), ack_subject=ack_subject)
        self.leases.hold(envelope.ack_subject, envelope.request_id)
        self.spawn(self.run(envelope, work, started, then))
        return envelope

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Shutdown: let the requests in hand finish (a SIGKILL instead leaves them to redelivery)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def run(self, envelope: Envelope, work: Work, started: float,
                  then: Callable[[], Awaitable[None]] | None = None) -> None:
        try:
            if envelope.expired():
                raise DeadlineExceeded(f"the request deadline passed before the {self.stage} stage could handle it")
            await work(envelope, started)
        except GatewayError as exc:
            await self.fail(envelope, exc, started, EventType.ended(self.stage, "failed"))
        except Exception as exc:  # noqa: BLE001 - every accepted request must end in an answer
            log.exception("%s: unexpected error on %s", self.stage, envelope.request_id)
            await self.fail(envelope, InternalError(f"{self.stage} stage failed: {type(exc).__name__}"),
                            started, EventType.ended(self.stage, "crashed"))
        finally:
            self.leases.release(envelope.ack_subject)
            if then is not None:
                await then()

    # -- passing requests on ------------------------------------------------------------------------

    async def forward(self, subject: str, envelope: Envelope) -> None:
        """Pass ``envelope`` to the next hop (``subject``) in this process's lane."""
        await self.nc.publish(self.ctx.hop(subject), encode(envelope))
        # nats-py writes from a flusher task, i.e. only once this handler yields: yield now so the
        # next stage gets the envelope before we spend time on events and bookkeeping.
        await asyncio.sleep(0)

    def event(
        self,
        envelope: Envelope,
        type_: EventType,
        started: float,
        *,
        status: str = "ok",
        attrs: StageAttrs | None = None,
    ) -> Envelope:
        """The envelope with this stage's event added; it is recorded when the request ends."""
        event = StageEvent(
            event_id=uuid7(),
            request_id=envelope.request_id,
            ts=time.time(),
            stage=self.stage,
            type=type_,
            status="ok" if status == "ok" else "error",
            tenant=envelope.tenant,
            api_key_id=envelope.api_key_id,
            duration_ms=(time.perf_counter() - started) * 1000,
            delivery=envelope.delivery,
            attrs=attrs or StageAttrs(),
        )
        return replace(envelope, events=[*envelope.events, event])

    async def reply(self, envelope: Envelope, reply: Reply) -> None:
        """A stream chunk to the caller (unconfirmed: ingress asks for a resend if one goes missing)."""
        await self.nc.publish(envelope.reply_to, encode(reply))
        await asyncio.sleep(0)  # on the wire before the bookkeeping that follows (see ``forward``)

    # -- ending a request ---------------------------------------------------------------------------

    async def finish(
        self,
        envelope: Envelope,
        *,
        status: int,
        body: JSONObject | None = None,
        error: ErrorInfo | None = None,
        stored_response: JSONObject | None = None,
        reply: Reply | None = None,
        answer: bool = True,
        resend: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """End the request: record it, answer the caller (``reply``, else built from ``status``, ``body``
        and ``error``; nothing when ``answer`` is false), and ack it once both are confirmed.
        ``resend``: a stream's chunks from a sequence number, when ingress says some went missing."""
        completed = RequestCompleted.from_envelope(envelope, stage=self.stage, status=status, error=error,
                                                   stored_response=stored_response)
        record = encode(completed)
        headers = {"Nats-Msg-Id": envelope.request_id}
        subject = self.event_subject
        if completed.scopes and not await self.ctx.settle(completed):
            subject = self.governed_subject  # settled by the policy replicas' ledger consumer instead
        recorded = await self.confirmer.send(subject, record, headers)
        answered: asyncio.Future[Msg] | None = None
        data = b""
        if answer:
            if reply is None:
                reply = build_reply(envelope, status, body, error)
            data = encode(reply)
            answered = await self.confirmer.send(envelope.reply_to, data)
        self.leases.hold(envelope.ack_subject, envelope.request_id)  # held until acked, whatever the caller's task
        self.spawn(self._settle(envelope, subject, record, recorded, data, answered, resend))
        await asyncio.sleep(0)  # on the wire now

    async def _settle(self, envelope: Envelope, subject: str, record: bytes, recorded: asyncio.Future[Msg],
                      data: bytes, answered: asyncio.Future[Msg] | None,
                      resend: Callable[[int], Awaitable[None]] | None) -> None:
        try:
            await self._stored(subject, record, envelope.request_id, recorded)
            if answered is not None:
                await self._confirmed(envelope, data, answered, resend)
            await self.leases.ack(envelope.ack_subject)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - unacked and unheld: JetStream redelivers, the rerun checks first
            log.exception("%s: could not settle %s", self.stage, envelope.request_id)
        finally:
            self.leases.release(envelope.ack_subject)

    async def _stored(self, subject: str, record: bytes, request_id: str, first: asyncio.Future[Msg]) -> None:
        """Until JetStream has stored the record (a duplicate of one stored earlier counts)."""
        headers = {"Nats-Msg-Id": request_id}
        future: asyncio.Future[Msg] | None = first
        while True:
            answer = await self.confirmer.deliver(subject, record, headers, first=future, give_up_s=30.0)
            future = None
            if answer is not None and b'"error"' not in answer.data:
                return
            log.warning("%s: the record of %s is not stored yet (%s); trying again", self.stage, request_id,
                        answer.data[:200] if answer is not None else "no answer")
            await asyncio.sleep(0.5)

    async def _confirmed(self, envelope: Envelope, data: bytes, first: asyncio.Future[Msg],
                         resend: Callable[[int], Awaitable[None]] | None) -> None:
        """Until ingress has the answer, no longer waits for it, or is gone."""
        future: asyncio.Future[Msg] | None = first
        for _ in range(100):  # resends of a stream's missing chunks: a bound, never reached in practice
            answer = await self.confirmer.deliver(envelope.reply_to, data, first=future, give_up_s=REPLY_GIVE_UP_S)
            future = None
            if answer is None:
                log.info("%s: nobody waits for %s any more (its ingress is gone)", self.stage, envelope.request_id)
                return
            ack = decode(answer.data, ReplyAck) if answer.data else ReplyAck()
            if ack.state != "resend" or resend is None:
                return
            await resend(ack.resend_from)

    async def fail(self, envelope: Envelope, error: GatewayError, started: float, type_: EventType) -> None:
        info = error.info()
        envelope = self.event(envelope, type_, started, status="error",
                              attrs=StageAttrs(error_type=info.type, error_code=info.code, status=info.status_code))
        await self.finish(envelope, status=info.status_code, error=info)

    # -- reruns -------------------------------------------------------------------------------------

    async def held_elsewhere(self, envelope: Envelope) -> bool:
        """Whether another process holds another delivery of this request: a live run (a restarted broker
        hands out again what live processes hold)."""
        try:
            await self.nc.request(subjects.held_subject(envelope.request_id), (envelope.ack_subject or "").encode(),
                                  timeout=HELD_TIMEOUT_S)
            return True
        except Exception:  # noqa: BLE001 - nobody holds it (no answer, or nobody subscribed): no live run
            return False

    async def check_rerun(self, envelope: Envelope) -> IngressState:
        """Before a redelivered request runs again: is another run of it still alive? Else, what does its
        caller already have?"""
        if await self.held_elsewhere(envelope):
            return IngressState(state="held")
        answer = await self.confirmer.deliver(
            envelope.reply_to, b"", {control.KIND: control.CHECK, control.DELIVERY: str(envelope.delivery)},
            attempt_s=1.0, give_up_s=CHECK_GIVE_UP_S)
        if answer is None:
            return IngressState(state="gone")
        return decode(answer.data, IngressState)

    async def settle_rerun(self, envelope: Envelope, state: IngressState, started: float) -> bool:
        """A redelivered request: True if it should run again; False if a live run holds it (this one
        steps aside: no answer, no record, no ack); else it is ended here (recorded, acked: the record
        only lands if the earlier run did not leave one)."""
        log.info("%s: rerun of %s (delivery %d): %s%s", self.stage, envelope.request_id, envelope.delivery,
                 state.state, f" {state.status}" if state.status else "")
        if state.state == "held":
            return False
        if state.state == "waiting":
            if envelope.delivery <= MAX_RUNS:
                return True
            error = InternalError(f"The gateway failed {envelope.delivery - 1} times while handling this request; "
                                  "it is not tried again.", code="repeated_failure")
            await self.fail(envelope, error, started, EventType.ended(self.stage, "abandoned"))
            return False
        if state.state == "done":
            info = state.error
            out = self.event(envelope, EventType.RERUN_SKIPPED, started, attrs=StageAttrs(reason="answered"))
            await self.finish(out, status=state.status or (info.status_code if info else 200), error=info,
                              answer=False)
            return False
        gone = ClientGone("The ingress holding the caller's connection stopped before the answer.").info()
        out = self.event(envelope, EventType.RERUN_SKIPPED, started, status="error",
                         attrs=StageAttrs(reason="client_gone"))
        await self.finish(out, status=gone.status_code, error=gone, answer=False)
        return False


def build_reply(envelope: Envelope, status: int, body: JSONObject | None, error: ErrorInfo | None) -> Reply:
    """The answer to ingress, with the rate limits the request met (its ``x-ratelimit-*`` headers)."""
    ratelimit = envelope.admission.ratelimit if envelope.admission is not None else None
    if error is not None:
        return Reply(kind="error", request_id=envelope.request_id, delivery=envelope.delivery,
                     status=error.status_code, error=error, provider_ms=envelope.provider_ms,
                     ttfb_ms=envelope.ttfb_ms, ratelimit=ratelimit, cost_usd=envelope.cost_usd)
    return Reply(kind="response", request_id=envelope.request_id, delivery=envelope.delivery, status=status,
                 body=body, provider_ms=envelope.provider_ms, ttfb_ms=envelope.ttfb_ms, ratelimit=ratelimit,
                 cost_usd=envelope.cost_usd, cache=envelope.cache, cache_age_s=envelope.cache_age_s,
                 cache_similarity=envelope.cache_similarity)
