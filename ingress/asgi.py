"""Small ASGI helpers: read a bounded body (in size and in time), send JSON, send an error in the OpenAI shape."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from schemas.errors import ErrorInfo, PayloadTooLarge, RequestTimeout

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

# How long a request's body may take to arrive, from the first read (``GATEWAY_BODY_TIMEOUT_S``): a client
# sending a byte a second (slowloris) is cut with a 408 instead of holding a connection and a task forever.
BODY_TIMEOUT_S = 30.0
# An answer sent before the body was read to its end (408, 413) closes the connection: the rest of the
# body would otherwise be read as the next request.
_UNREAD_BODY = frozenset({408, 413})
_BODY_LATE = "request body deadline"

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body, at most ``limit`` bytes (else 413), arrived within ``timeout_s`` (else 408)."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes.")
    # ``asyncio.timeout`` costs ≈ 5.5 µs a request here; a timer cancelling the task ≈ 1 µs (measured)
    task = asyncio.current_task()
    assert task is not None
    timer = asyncio.get_running_loop().call_later(timeout_s, task.cancel, _BODY_LATE)
    try:
        return await _read(receive, limit)
    except asyncio.CancelledError as exc:
        if exc.args != (_BODY_LATE,) or task.uncancel() > 0:
            raise  # cancelled by someone else (shutdown): not ours to turn into an answer
        raise RequestTimeout(f"The request body did not arrive within {timeout_s:g}s; send it at once "
                             "(the limit is GATEWAY_BODY_TIMEOUT_S).") from None
    finally:
        timer.cancel()


async def _read(receive: Receive, limit: int) -> bytes:
    message = await receive()
    chunk: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the whole body in one message: the usual case
        if len(chunk) > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        return chunk
    chunks = [chunk]
    size = len(chunk)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_json(
    send: Send, status: int, payload: Any, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(payload)
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send,
    error: ErrorInfo,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    render: Callable[[ErrorInfo], dict[str, Any]] = ErrorInfo.to_body,
) -> None:
    """The error with its status, in the client surface's shape (OpenAI's by default)."""
    headers = list(extra_headers or [])
    if error.status_code in _UNREAD_BODY:
        headers.append((b"connection", b"close"))
    if error.retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(error.retry_after_s))).encode()))
    await send_json(send, error.status_code, render(error), headers)
