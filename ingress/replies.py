"""Answers coming back from the chain, matched to the waiting HTTP requests, in order, once.

One wildcard subscription per ingress process (``gw.reply.<ingress_id>.*``). Per request a ``Pending``
keeps what the caller already has, so this module can answer the chain's questions about it:

- The final answer (``response``, ``error``, ``end``) comes as a request and is confirmed with a
  ``ReplyAck``: ``ok`` once it is queued for the caller, ``gone`` when ingress no longer waits for that
  request (answered already, timed out, or a run it does not follow), ``resend`` when stream chunks are
  missing (a broker restart dropped them: the filter replica sends them again, then the end again).
- Stream chunks are put in ``seq`` order: a duplicate is dropped, a chunk after a gap waits until the
  gap is filled, and the gap is asked for at once (``resend``) from the filter replica named in ``src``.
- ``check`` (a rerun: the run that had the request died and JetStream redelivered it): ``waiting`` if
  the caller has nothing yet (ingress follows the rerun from now on), else ``done`` with what the caller
  got. A stream the caller is half-way through cannot be continued by another run: it is ended with an
  in-band error, and that is what ``done`` reports (the rerun records it).

Replies of a run ingress does not follow are dropped, so the caller never gets two answers or two
streams mixed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from schemas import control, subjects
from schemas.control import IngressState, ReplyAck, Resend
from schemas.envelope import Reply
from schemas.errors import ErrorInfo, StreamInterrupted
from schemas.wire import decode, encode, json_list

log = logging.getLogger("gateway.ingress")

RECENT_KEPT = 20_000
"""Outcomes of requests already answered, for a rerun asking after them (a few minutes of traffic; a
rerun comes within seconds). An answered request costs one key here: every plain 200 shares one object."""
ANSWERED = IngressState(state="done", status=200)
RESEND_EVERY_S = 0.5

_OK = encode(ReplyAck())
_GONE = encode(ReplyAck(state="gone"))


@dataclass
class Pending:
    """One request waiting for its answer."""

    request_id: str
    stream: bool
    queue: asyncio.Queue[Reply] = field(default_factory=asyncio.Queue)
    delivery: int = 1  # the run whose replies reach the caller
    next_seq: int = 0  # streams: the next chunk the caller is due
    early: dict[int, Reply] = field(default_factory=dict)  # chunks that arrived after a gap
    src: str = ""  # the filter replica relaying the stream
    resend_asked: float = 0.0
    outcome: IngressState | None = None  # set once the caller's answer is decided
    said: bool = False  # streams: the caller has some of the answer's content (not only its opening)
    opened: bool = False  # streams: the caller has the opening (the role chunk)
    skip_opening: bool = False  # a rerun took over after the opening: its own opening is not sent again


class ReplyWaiter:
    """Pending requests by id, and the answers to the chain's questions about them."""

    def __init__(self, ingress_id: str, nc: Callable[[], NatsClient] | None = None) -> None:
        self.prefix = f"{subjects.REPLY_PREFIX}.{ingress_id}"
        self._nc = nc
        self._pending: dict[str, Pending] = {}
        self._recent: OrderedDict[str, IngressState] = OrderedDict()
        self.late_replies = 0

    @property
    def wildcard(self) -> str:
        return f"{self.prefix}.*"

    def subject_for(self, request_id: str) -> str:
        return f"{self.prefix}.{request_id}"

    def open(self, request_id: str, stream: bool = False) -> Pending:
        pending = Pending(request_id, stream)
        self._pending[request_id] = pending
        return pending

    def close(self, request_id: str, outcome: IngressState | None = None) -> None:
        pending = self._pending.pop(request_id, None)
        final = outcome or (pending.outcome if pending is not None else None)
        if final is not None:
            self._recent[request_id] = final
            while len(self._recent) > RECENT_KEPT:
                self._recent.popitem(last=False)

    def settle(self, pending: Pending, status: int, error: ErrorInfo | None = None) -> None:
        """The caller's answer is decided (sent, or about to be): what a rerun is told from now on."""
        if pending.outcome is None:
            ok = status == 200 and error is None
            pending.outcome = ANSWERED if ok else IngressState(state="done", status=status, error=error)

    def __len__(self) -> int:
        return len(self._pending)

    # -- messages ---------------------------------------------------------------------------------

    async def on_message(self, msg: Msg) -> None:
        request_id = msg.subject.rsplit(".", 1)[-1]
        headers = msg.headers
        if headers is not None and headers.get(control.KIND) == control.CHECK:
            state = self._check(request_id, int(headers.get(control.DELIVERY) or 0))
            log.info("rerun %s of %s: %s", headers.get(control.DELIVERY), request_id, state.state)
            await self._respond(msg, encode(state))
            return
        pending = self._pending.get(request_id)
        if pending is None:
            self.late_replies += 1
            await self._respond(msg, _GONE)
            return
        reply = decode(msg.data, Reply)
        if reply.delivery != pending.delivery or pending.outcome is not None:
            self.late_replies += 1  # a run this request no longer follows, or an answer already decided
            await self._respond(msg, _GONE)
            return
        if reply.src:
            pending.src = reply.src
        if reply.kind == "chunk":
            await self._chunk(pending, reply)
            return
        if reply.kind == "end" and reply.seq != pending.next_seq:
            # chunks before the end are missing: have them sent again, then the end again
            await self._respond(msg, encode(ReplyAck(state="resend", resend_from=pending.next_seq)))
            return
        pending.queue.put_nowait(reply)
        status = reply.error.status_code if reply.error is not None else reply.status
        self.settle(pending, status, reply.error)
        await self._respond(msg, _OK)

    async def _chunk(self, pending: Pending, reply: Reply) -> None:
        if reply.seq < pending.next_seq:
            return  # a duplicate (a replayed or resent chunk the caller already has)
        if reply.seq > pending.next_seq:
            pending.early[reply.seq] = reply
            await self._ask_resend(pending)
            return
        self._queue_chunk(pending, reply)
        while pending.next_seq in pending.early:
            self._queue_chunk(pending, pending.early.pop(pending.next_seq))

    @staticmethod
    def _queue_chunk(pending: Pending, reply: Reply) -> None:
        pending.next_seq += 1
        content = has_content(reply)
        if pending.skip_opening and not content and not has_finish(reply):
            return  # the rerun's opening: the caller has one already
        pending.skip_opening = False
        pending.queue.put_nowait(reply)
        pending.opened = True
        if content:
            pending.said = True

    async def _ask_resend(self, pending: Pending) -> None:
        now = time.monotonic()
        if not pending.src or self._nc is None or now - pending.resend_asked < RESEND_EVERY_S:
            return
        pending.resend_asked = now
        request = Resend(request_id=pending.request_id, from_seq=pending.next_seq)
        try:
            await self._nc().publish(pending.src, encode(request),
                                     headers={control.KIND: control.RESEND})
        except Exception as exc:  # noqa: BLE001 - the next out-of-order chunk asks again
            log.debug("resend request failed: %r", exc)

    def _check(self, request_id: str, delivery: int) -> IngressState:
        pending = self._pending.get(request_id)
        if pending is None:
            return self._recent.get(request_id) or IngressState(state="gone")
        if pending.outcome is not None:
            return pending.outcome
        if pending.said:
            # Half an answer is with the caller; another run cannot continue it: end it in-band.
            error = StreamInterrupted("A gateway worker failed while streaming this answer; please retry "
                                      "the request.").info()
            pending.queue.put_nowait(Reply(kind="error", request_id=request_id, delivery=pending.delivery,
                                           status=error.status_code, error=error))
            self.settle(pending, error.status_code, error)
            assert pending.outcome is not None
            return pending.outcome
        if delivery > pending.delivery:  # follow the rerun; whatever the dead run sent is void
            pending.delivery = delivery
            pending.early.clear()
            pending.next_seq = 0  # the rerun's chunks from its first, but for its opening if the caller has one
            pending.skip_opening = pending.opened
        return IngressState(state="waiting")

    async def _respond(self, msg: Msg, data: bytes) -> None:
        if msg.reply and self._nc is not None:
            try:
                await self._nc().publish(msg.reply, data)
            except Exception as exc:  # noqa: BLE001 - the sender asks again
                log.debug("could not confirm a reply: %r", exc)


def has_content(reply: Reply) -> bool:
    """A stream chunk that carries some of the answer (text or a tool call), not only its opening."""
    for choice in json_list((reply.body or {}).get("choices")):
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
    return False


def has_finish(reply: Reply) -> bool:
    return any(isinstance(c, dict) and c.get("finish_reason") for c in json_list((reply.body or {}).get("choices")))
