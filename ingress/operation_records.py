"""The ``requests`` row of an operation ingress serves itself (the Files and Batch APIs, async request
submissions): who, which operation, its status and error, how long it took (``stage = 'ingress'``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ingress.asgi import Message, Scope, Send
from schemas.events import RequestCompleted
from schemas.governance import VirtualKey
from schemas.ids import uuid7

_KEY = "gateway.operation.key"  # the scope entry holding the authenticated key


def remember_key(scope: Scope, key: VirtualKey) -> None:
    """The key the operation was authenticated with, for its record."""
    scope[_KEY] = key


class Answer:
    """Watches what a handler sends: its status, and an error answer's body (small, JSON)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self._error = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        elif self.status >= 400:
            self._error += message.get("body", b"")
        await self._send(message)

    def error(self) -> dict[str, Any]:
        if not self._error:
            return {}
        try:
            body = orjson.loads(self._error)
        except orjson.JSONDecodeError:
            return {}
        error = body.get("error") if isinstance(body, dict) else None
        return error if isinstance(error, dict) else {}


async def recorded(endpoint: str, scope: Scope, send: Send, handler: Callable[[Send], Awaitable[None]],
                   record: Callable[[RequestCompleted], None] | None) -> None:
    """Serve with ``handler``, then record the operation as one ``requests`` row (when ``record`` is set)."""
    received_at, started = time.time(), time.perf_counter()
    answer = Answer(send)
    await handler(answer.send)
    if record is None:
        return
    key: VirtualKey | None = scope.get(_KEY)
    latency = round((time.perf_counter() - started) * 1000, 3)
    error = answer.error()
    record(RequestCompleted(
        event_id=uuid7(), request_id=uuid7(), ts=received_at, finished_at=time.time(), stage="ingress",
        endpoint=endpoint, tenant=key.tenant if key else "", api_key_id=key.id if key else "",
        status_code=answer.status, error_type=error.get("type") or "", error_code=error.get("code") or "",
        error_message=error.get("message") or "", latency_ms=latency, gateway_overhead_ms=latency))
