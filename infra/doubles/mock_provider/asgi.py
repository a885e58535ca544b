"""Minimal raw-ASGI plumbing: the callable types, body reading and whole-response sending."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class StreamCut(Exception):
    """Raised after a partial stream so the server drops the connection without the terminal chunk."""


class ClientGone(Exception):
    """The client disconnected before the request body was fully received."""


async def read_body(receive: Receive) -> bytes:
    """The whole request body (one message in the common case, no copies then)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def wait_for_disconnect(receive: Receive) -> None:
    """Block (without busy work) until the client goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_bytes(
    send: Send, status: int, body: bytes, headers: Headers = JSON_HEADERS, extra: Headers | None = None
) -> None:
    """Send a complete response with a Content-Length."""
    all_headers = [*headers, (b"content-length", str(len(body)).encode())]
    if extra:
        all_headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
