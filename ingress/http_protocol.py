"""uvicorn's httptools protocol with the bounds it lacks, and its refusals in the OpenAI error shape.

uvicorn 0.55 with httptools bounds neither the size of a request's header section, nor the number of its
headers, nor the time its headers take to arrive (its keep-alive timeout runs only between requests), and
answers a malformed request with a plain-text 400. This subclass adds, per connection:

- a header section over ``max_head_bytes`` (one huge header, or a head that never ends) or with more than
  ``max_headers`` headers: 431 ``headers_too_large``;
- headers that take longer than ``header_timeout_s`` from the first byte of the request (slowloris), or a
  connection that sends nothing that long: 408 ``request_timeout`` (a silent connection is just closed);
- a request the parser refuses (a NUL, CR or LF in a header value, a bad request line): 400
  ``invalid_http`` in the OpenAI shape instead of uvicorn's plain text.

Each refusal closes the connection. The body's own deadline is the app's (``ingress/asgi.read_body``), so
that refusal is recorded with the request like every other.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from schemas.errors import GatewayError, InvalidRequest, RequestHeadersTooLarge, RequestTimeout

HEADER_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128


def refusal_bytes(error: GatewayError) -> bytes:
    """A complete HTTP/1.1 response for ``error``, in the OpenAI shape, closing the connection."""
    body = orjson.dumps(error.to_body())
    head = (f"HTTP/1.1 {error.status_code} {HTTPStatus(error.status_code).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("latin-1") + body


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; ``EdgeProtocol.send_400_response`` answers it."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class EdgeProtocol(HttpToolsProtocol):
    """Limits are class attributes: ``edge_protocol()`` makes a subclass with the process's settings."""

    header_timeout_s = HEADER_TIMEOUT_S
    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a request's first byte (or the connection's start) and its last header
        self._head_started = 0.0  # loop time of the current head's first byte (or of the connection)
        self._head_bytes = 0  # bytes received while in the head, over whole chunks
        self._chunk = 0  # size of the chunk being parsed
        self._seen_bytes = False
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: GatewayError | None = None
        self._refused = False

    # -- connection ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # One timer per connection, not per request: it checks the head's age when it fires and sleeps again.
        self._head_started = self.loop.time()
        self._timer = self.loop.call_later(self.header_timeout_s, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._seen_bytes = True
        self._chunk = len(data)
        super().data_received(data)  # a parser error, ours included, ends in send_400_response
        if self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:  # a head that never ends: refused before it is whole
                self._refuse(self._too_large())

    def send_400_response(self, msg: str) -> None:
        error = self._refusal or InvalidRequest(
            "Invalid HTTP request received (a malformed request line or header, e.g. a NUL, CR or LF in a "
            "header value); the connection is closed.", code="invalid_http")
        self._refuse(error)

    # -- parser callbacks --------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_started = self.loop.time()

    def on_headers_complete(self) -> None:
        self._in_head = False
        # the exact size only when this chunk could hold that much (cheap for every usual request)
        if len(self.headers) > self.max_headers or (
                self._head_bytes + self._chunk > self.max_head_bytes
                and len(self.url) + sum(len(n) + len(v) for n, v in self.headers) > self.max_head_bytes):
            self._refusal = self._too_large()
            raise _Refused(self._refusal)
        super().on_headers_complete()

    # -- helpers -----------------------------------------------------------------------------------------

    def _too_large(self) -> GatewayError:
        return RequestHeadersTooLarge(
            f"The request's headers are over the limit ({self.max_head_bytes} bytes, {self.max_headers} headers); "
            "send fewer or smaller headers.")

    def _check_head(self) -> None:
        self._timer = None
        if self._refused or self.transport.is_closing():
            return
        late = self.loop.time() - self._head_started
        if not self._in_head or late < self.header_timeout_s:
            wait = self.header_timeout_s - late if self._in_head else self.header_timeout_s
            self._timer = self.loop.call_later(wait, self._check_head)
            return
        if not self._seen_bytes:  # an idle connection that never sent a byte: nobody to answer
            self._refused = True
            self.transport.close()
            return
        self._refuse(RequestTimeout(f"The request's headers did not arrive within {self.header_timeout_s:g}s "
                                    "(GATEWAY_HEADER_TIMEOUT_S); the connection is closed."))

    def _refuse(self, error: GatewayError) -> None:
        self._refused = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.transport.is_closing():
            self.transport.write(refusal_bytes(error))
            self.transport.close()


def edge_protocol(header_timeout_s: float = HEADER_TIMEOUT_S, max_head_bytes: int = MAX_HEAD_BYTES,
                  max_headers: int = MAX_HEADERS) -> type[EdgeProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    return type("EdgeProtocol", (EdgeProtocol,), {"header_timeout_s": header_timeout_s,
                                                  "max_head_bytes": max_head_bytes, "max_headers": max_headers})
