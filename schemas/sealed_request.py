"""The raw request as it waits in ``GW_REQ``: sealed, so no value of it is readable at rest.

Ingress publishes ``seal_request(envelope, key)``: the encoded envelope sealed with AES-GCM under the
envelope key (``schemas.sealing.seal``: version byte, fresh 96-bit nonce, binary), the request id as
associated data, so a sealed request cannot be replayed under another ``Nats-Msg-Id``. Two headers
travel in clear, neither a value of the request: ``Nats-Msg-Id`` (the request id, JetStream's
de-duplication) and ``Gw-Reply-To`` (the waiting ingress's reply subject).

The redaction stage reads it with ``open_request``. A message that does not open (another key,
altered, truncated, or unsealed from an older gateway) raises ``RequestUnreadable``; ``stand_in`` then
gives the envelope the stage answers and records that error with, built from the clear headers alone.
"""

from __future__ import annotations

import time

from schemas.envelope import Envelope
from schemas.ids import uuid7
from schemas.sealing import SealError, open_sealed, seal
from schemas.subjects import REPLY_PREFIX
from schemas.wire import DecodeError, decode, encode

MSG_ID = "Nats-Msg-Id"
REPLY_TO = "Gw-Reply-To"
STAND_IN_DEADLINE_S = 30.0
"""An unreadable request's stand-in has no deadline of its own: this long to answer and record it."""


class RequestUnreadable(SealError):
    """A request in ``GW_REQ`` that the redaction stage cannot open: it is answered with this error,
    recorded, and acked (never run, never redelivered)."""

    default_code = "request_unreadable"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The gateway could not read this request ({reason}); it was not processed. If every request "
            "fails this way, ingress and the redaction stage hold different envelope keys: give every "
            "gateway process the same GATEWAY_ENVELOPE_KEY (or the same data directory's envelope.key) "
            "and restart them; a request published by an older gateway version must be sent again.")


def seal_request(envelope: Envelope, key: bytes) -> tuple[bytes, dict[str, str]]:
    """The sealed payload and the clear headers to publish into ``GW_REQ``."""
    data = seal(encode(envelope), key, aad=envelope.request_id.encode())
    return data, {MSG_ID: envelope.request_id, REPLY_TO: envelope.reply_to}


def open_request(data: bytes, headers: dict[str, str] | None, key: bytes) -> Envelope:
    """The envelope ``seal_request`` sealed; ``RequestUnreadable`` for anything else."""
    request_id = (headers or {}).get(MSG_ID)
    if not request_id:
        raise RequestUnreadable("no request id")
    try:
        plaintext = open_sealed(data, key, aad=request_id.encode())
    except SealError as exc:
        raise RequestUnreadable("not sealed with this gateway's envelope key, altered, or unsealed") from exc
    try:
        envelope = decode(plaintext, Envelope)
    except DecodeError as exc:
        raise RequestUnreadable("not a request envelope of this gateway version") from exc
    if envelope.request_id != request_id:
        raise RequestUnreadable("its request id does not match its message id")
    return envelope


def stand_in(headers: dict[str, str] | None, now: float | None = None) -> Envelope:
    """An unreadable request as far as its clear headers tell: its id and where its caller waits (no
    body, no key, no model), to answer and record its ``RequestUnreadable`` with."""
    headers = headers or {}
    now = time.time() if now is None else now
    request_id = headers.get(MSG_ID) or uuid7()
    reply_to = headers.get(REPLY_TO, "")
    if not reply_to.startswith(REPLY_PREFIX + "."):
        reply_to = f"{REPLY_PREFIX}.unknown.{request_id}"  # nobody waits there: the answer is given up
    return Envelope(request_id=request_id, received_at=now, deadline=now + STAND_IN_DEADLINE_S,
                    reply_to=reply_to, body={}, model_requested="")
