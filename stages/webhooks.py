"""Webhooks for async requests, the pure part: which callback URLs are allowed, how a delivery is signed
and verified, how long to wait between attempts and which answers are worth another one.

A delivery is a POST of the JSON result with three headers: ``x-gateway-webhook-id`` (the same on every
attempt of one delivery), ``x-gateway-timestamp`` and ``x-gateway-signature: t=<unix seconds>,v1=<hex>``,
where ``v1`` is the HMAC-SHA256, under the shared secret, of ``f"{webhook_id}.{t}.".encode() + body``
(the Stripe / Standard Webhooks shape: bound to the id and the time, so a captured delivery cannot be
replayed later or under another id). Each attempt is signed again with its own time. A receiver checks it
with ``verify`` (the raw body, before any JSON parsing)::

    seen: set[str] = set()  # ids already processed (keeping 2 × tolerance_s of them is enough)

    def receive(headers: Mapping[str, str], raw_body: bytes) -> int:  # the status to answer
        try:
            verify(SECRET, headers["x-gateway-signature"], headers["x-gateway-webhook-id"], raw_body,
                   now=time.time(), tolerance_s=300, seen=seen)
        except (KeyError, WebhookSignatureError):
            return 401  # unsigned, forged, stale or replayed: do not process it
        return 204  # process json.loads(raw_body) first (or queue it)

``verify`` adds the id to ``seen`` once it passes: a receiver that then fails to process the delivery
(and answers 5xx so the gateway retries) should discard the id again, or the retry is refused as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from typing import Literal

from schemas.config_webhooks import url_allowed as url_allowed  # the allow-list (ingress checks it too)

SIGNATURE_HEADER = "x-gateway-signature"
WEBHOOK_ID_HEADER = "x-gateway-webhook-id"
TIMESTAMP_HEADER = "x-gateway-timestamp"
RETRYABLE_4XX = frozenset({408, 409, 425, 429})

FailureReason = Literal["malformed", "signature", "too_old", "in_future", "replay"]


class WebhookSignatureError(ValueError):
    """A delivery that must not be processed; ``reason`` says why.

    A ``ValueError``, not one of ``schemas.errors``: that hierarchy is what the gateway answers its callers
    with (status, OpenAI error body), while this is raised in the receiver's process, which the gateway
    never answers for."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason


# -- signing ----------------------------------------------------------------------------------------------

def _digest(secret: bytes, timestamp: int, webhook_id: str, body: bytes) -> str:
    return hmac.new(secret, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, webhook_id: str, body: bytes) -> str:
    """The ``x-gateway-signature`` value of one attempt: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, webhook_id, body)}"


def verify(secret: bytes, header: str, webhook_id: str, body: bytes, *, now: float, tolerance_s: int,
           seen: set[str] | None = None) -> None:
    """Check a delivery as its receiver: the signature over ``webhook_id`` and ``body`` under ``secret``,
    its time within ``tolerance_s`` of ``now`` either way, and (with ``seen``) that the id is new; then
    add the id to ``seen``. Raises ``WebhookSignatureError`` otherwise. Several ``v1=`` values (a secret
    being rotated) pass when one matches."""
    timestamp, signatures = _parse_header(header)
    expected = _digest(secret, timestamp, webhook_id, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookSignatureError("signature", "the signature does not match the body, id and secret")
    if timestamp < now - tolerance_s:
        raise WebhookSignatureError("too_old", f"signed {now - timestamp:.0f} s ago, over the {tolerance_s} s window")
    if timestamp > now + tolerance_s:
        raise WebhookSignatureError("in_future", f"signed {timestamp - now:.0f} s in the future, "
                                                 f"over the {tolerance_s} s window")
    if seen is not None:
        if webhook_id in seen:
            raise WebhookSignatureError("replay", f"webhook {webhook_id!r} was already received")
        seen.add(webhook_id)


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookSignatureError("malformed", f"{SIGNATURE_HEADER}: {item.strip()!r} is not key=value")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value.lower())
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()) or len(timestamps[0]) > 12:
        raise WebhookSignatureError("malformed", f"{SIGNATURE_HEADER}: needs exactly one t=<unix seconds>")
    if not signatures or not all(len(s) == 64 and _is_hex(s) for s in signatures):
        raise WebhookSignatureError("malformed", f"{SIGNATURE_HEADER}: needs v1=<64 hex digits>")
    return int(timestamps[0]), signatures


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)


# -- retries ----------------------------------------------------------------------------------------------

def backoff_s(attempt: int, first: float, maximum: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter, a uniform draw below
    ``first · 2^(attempt-1)`` capped at ``maximum``. ``rand`` returns a float in [0, 1)."""
    ceiling = min(maximum, first * 2.0 ** min(max(attempt, 1) - 1, 64))
    return rand() * ceiling


def retryable(status: int | None) -> bool:
    """Whether an attempt that ended so is worth another: no answer (``None``), 408, 409, 425, 429 and 5xx.
    Other 4xx will not change, 3xx is a redirect (never followed), 2xx is delivered."""
    return status is None or status in RETRYABLE_4XX or 500 <= status <= 599
