"""Answering the caller: the chain's reply relayed as one JSON body or as an SSE stream, ingress's own
504 when the deadline passes first, and refusals.

Every request ingress ends itself (refused before it entered the chain, or timed out in it) still
becomes one ``requests`` record, without a body since it was never redacted; records are queued
(``ingress/records.py``), so the answer never waits for the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ingress.admission import Overload
from ingress.asgi import SSE_HEADERS, Send, send_error, send_json
from ingress.intake import Intake
from ingress.ratelimit_headers import ratelimit_headers
from ingress.records import RecordOutbox
from ingress.replies import Pending, ReplyWaiter
from ingress.surfaces import Surface
from schemas.cache import cache_headers
from schemas.envelope import Envelope, Reply
from schemas.errors import DeadlineExceeded, ErrorInfo, InternalError
from schemas.events import RequestCompleted
from schemas.governance import KeyDirectory
from schemas.ids import uuid7
from schemas.key_auth import key_of

# How long past the deadline ingress still waits for the chain's own timeout answer.
DEADLINE_GRACE_S = 1.0

Header = tuple[bytes, bytes]


def overhead_header(started: float, provider_ms: float) -> Header:
    """``x-gateway-overhead-ms``: the time since the request arrived, less the provider's."""
    overhead = max(0.0, (time.perf_counter() - started) * 1000 - provider_ms)
    return (b"x-gateway-overhead-ms", f"{overhead:.3f}".encode())


class Relay:
    """``keys``: the key directory of now (the tenant and key id of ingress's records)."""

    def __init__(self, waiter: ReplyWaiter, overload: Overload, records: RecordOutbox,
                 keys: Callable[[], KeyDirectory]) -> None:
        self.waiter = waiter
        self.overload = overload
        self.records = records
        self._keys = keys

    async def response(self, send: Send, surface: Surface, pending: Pending, envelope: Envelope,
                       started: float, id_header: Header) -> None:
        reply = await self._next(pending, envelope)
        if reply is None:
            await self._timed_out(send, surface, pending, envelope, started, id_header)
            return
        self._observe(started, reply.provider_ms)
        headers = [id_header, overhead_header(started, reply.provider_ms), *ratelimit_headers(reply.ratelimit),
                   *cache_headers(reply)]
        if reply.kind == "response":
            body = surface.response_body(reply.body or {}, envelope.model_requested)
            await send_json(send, reply.status, body, headers)
        elif reply.kind == "error" and reply.error is not None:
            await send_error(send, reply.error, headers, surface.error_body)
        else:
            error = InternalError(f"unexpected reply kind {reply.kind!r}").info()
            await send_error(send, error, headers, surface.error_body)

    async def stream(self, send: Send, surface: Surface, pending: Pending, envelope: Envelope,
                     started: float, id_header: Header) -> None:
        """Relay a stream; ``pending`` hands the chunks over in order, once, from the run it follows."""
        renderer = surface.stream(envelope.model_requested, envelope.request_id)
        started_sse = False
        while True:
            reply = await self._next(pending, envelope)
            if reply is None:
                if not started_sse:
                    await self._timed_out(send, surface, pending, envelope, started, id_header)
                else:
                    error = DeadlineExceeded("The request deadline passed while streaming.").info()
                    self.waiter.settle(pending, error.status_code, error)
                    await self._close_stream(send, renderer.error(error))
                    self._record_ended(envelope, error)
                return
            if not started_sse:
                if reply.kind == "error" and reply.error is not None:
                    headers = [id_header, overhead_header(started, reply.provider_ms),
                               *ratelimit_headers(reply.ratelimit)]
                    await send_error(send, reply.error, headers, surface.error_body)
                    return
                ttfb = reply.ttfb_ms or 0.0
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*SSE_HEADERS, id_header, overhead_header(started, ttfb),
                                        *ratelimit_headers(reply.ratelimit), *cache_headers(reply)]})
                started_sse = True
            if reply.kind == "chunk":
                data = renderer.chunk(reply.body or {})
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            elif reply.kind == "error" and reply.error is not None:
                await self._close_stream(send, renderer.error(reply.error))
                return
            else:  # end
                self._observe(started, reply.provider_ms)
                await self._close_stream(send, renderer.end())
                return

    async def refuse(self, send: Send, surface: Surface, error: ErrorInfo, intake: Intake, started: float,
                     id_header: Header) -> None:
        """Answer ``error`` before the request entered the chain, and record it with what was read."""
        await send_error(send, error, [id_header, overhead_header(started, 0.0)], surface.error_body)
        body, meta = intake.body, intake.meta
        model = body.get("model") if isinstance(body, dict) else None
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        user = body.get("user") if isinstance(body, dict) else None  # metadata may be what was refused
        self._record_refused(intake.request_id, intake.received_at, started, error, endpoint=surface.endpoint,
                             stream=stream, model=model if isinstance(model, str) else "",
                             key_hash=intake.key_hash,
                             user=meta.user if meta else user if isinstance(user, str) else "",
                             tags=meta.tags if meta else None)

    # -- helpers --------------------------------------------------------------------------------------

    async def _next(self, pending: Pending, envelope: Envelope) -> Reply | None:
        timeout = envelope.remaining_s() + DEADLINE_GRACE_S
        try:
            return await asyncio.wait_for(pending.queue.get(), timeout=max(0.001, timeout))
        except TimeoutError:
            return None

    def _observe(self, started: float, provider_ms: float) -> None:
        self.overload.observe(max(0.0, (time.perf_counter() - started) * 1000 - provider_ms))

    @staticmethod
    async def _close_stream(send: Send, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def _timed_out(self, send: Send, surface: Surface, pending: Pending, envelope: Envelope, started: float,
                         id_header: Header) -> None:
        error = DeadlineExceeded(
            f"The request did not complete within its deadline of "
            f"{envelope.deadline - envelope.received_at:.1f}s."
        ).info()
        self.waiter.settle(pending, error.status_code, error)
        await send_error(send, error, [id_header, overhead_header(started, 0.0)], surface.error_body)
        self._record_ended(envelope, error)

    def _record_ended(self, envelope: Envelope, error: ErrorInfo) -> None:
        """A request ingress itself ended after publishing it (its deadline passed): one ``requests`` row,
        from the envelope as ingress sent it (no body: it was never redacted)."""
        key = key_of(self._keys(), envelope.api_key_hash)
        self.records.add(RequestCompleted.from_envelope(
            envelope, stage="ingress", status=error.status_code, error=error,
            tenant=key.tenant if key else "", api_key_id=key.id if key else ""))

    def _record_refused(self, request_id: str, received_at: float, started: float, error: ErrorInfo, *,
                        stream: bool, model: str = "", key_hash: str | None = None,
                        endpoint: str = "chat.completions", user: str = "",
                        tags: dict[str, str] | None = None) -> None:
        """Requests ended by ingress itself still become one ``requests`` row; no body, since it was
        never redacted. Queued (``ingress/records.py``): the answer never waits for the broker."""
        now = time.time()
        latency = (time.perf_counter() - started) * 1000
        key = key_of(self._keys(), key_hash)
        self.records.add(RequestCompleted(
            event_id=uuid7(), request_id=request_id, ts=received_at, finished_at=now, stage="ingress",
            endpoint=endpoint,
            tenant=key.tenant if key else "", api_key_id=key.id if key else "", user=user, tags=tags or {},
            model_requested=model, stream=stream, status_code=error.status_code, error_type=error.type,
            error_code=error.code or "", error_message=error.message, latency_ms=round(latency, 3),
            gateway_overhead_ms=round(latency, 3),
        ))
