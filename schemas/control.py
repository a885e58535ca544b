"""The small messages that keep the chain's hand-offs whole: confirmations, checks and resends.

They travel as NATS requests beside the envelopes (see ``workers/confirm.py``). A ``Gw-Kind`` header
tells a control message from a payload on subjects that carry both.

- A final answer (``Reply`` kind response, error or end) is sent to ingress as a request; ingress
  confirms it with a ``ReplyAck``: ``ok``, ``gone`` (it no longer waits for that request), or for a
  stream ``resend_from`` (chunks went missing: the filter sends them again, then the end again).
- ``check``: a redelivered request (its earlier run died) asks the ingress that waits for it what the
  caller already has, before running again: an ``IngressState``.
- ``resend``: ingress asks the filter replica that relays a stream for its chunks from ``from_seq``.
- ``ping``: the provider stage asks the filter replica that took a stream how far it got: a ``StreamAck``
  (``next`` = the next piece it expects; None: it does not hold that stream, e.g. a new replica).
- ``PieceAck``: the answer to the stream's last piece: ``taken`` once the filter holds the end of the
  request (it answers, records and acks from there on).
- ``Taken``: the answer to a whole response handed to the filter: it holds the request from there on.
"""

from __future__ import annotations

from typing import Literal

from schemas.errors import ErrorInfo
from schemas.wire import Message

KIND = "Gw-Kind"
DELIVERY = "Gw-Delivery"
CHECK = "check"
RESEND = "resend"
PING = "ping"


class ReplyAck(Message, frozen=True, kw_only=True):
    state: Literal["ok", "gone", "resend"] = "ok"
    resend_from: int = 0


class IngressState(Message, frozen=True, kw_only=True):
    """What the caller has of a request, as its ingress sees it.

    ``waiting``: nothing yet; the rerun may run (ingress now follows the rerun's ``delivery``).
    ``done``: the caller has its whole answer, or ingress ended it (``status``/``error``), e.g. a stream
    cut by the failed run; the rerun must not run again, only make sure the request is recorded.
    ``gone``: ingress does not know the request (it stopped, or forgot a request long answered).
    ``held``: not from ingress: a live process holds an earlier run of the request (the rerun steps aside)."""

    state: Literal["waiting", "done", "gone", "held"]
    status: int = 0
    error: ErrorInfo | None = None


class Resend(Message, frozen=True, kw_only=True):
    request_id: str
    from_seq: int


class StreamAck(Message, frozen=True, kw_only=True):
    next: int | None = None
    taken: bool = False
