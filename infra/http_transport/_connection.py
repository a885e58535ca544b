"""One HTTP/1.1 client connection: an asyncio Protocol that feeds `httptools` directly (no streams layer).

`data_received` runs the C parser; its callbacks collect status, raw headers and body pieces on the
connection, and wake the one task waiting on it. Waits use a future plus a `call_later` timer (no task
cancellation), so a timed-out wait costs nothing beyond the timer.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

# Pause reading from the socket once this much body is buffered and not yet consumed by the reader.
_HIGH_WATER = 256 * 1024


def expire(waiter: asyncio.Future[bool]) -> None:
    """Timer callback: resolve a waiter with False (= timed out) unless something woke it first."""
    if not waiter.done():
        waiter.set_result(False)


class _ExtraMessage(Exception):
    """Raised from a parser callback when a second response starts on the connection (stops parsing)."""


class Connection(asyncio.Protocol):
    """A keep-alive connection and the state of the response it is currently receiving."""

    __slots__ = (
        "_loop", "_parser", "transport", "alive", "active", "idle_since", "_waiter", "_write_waiter",
        "_write_paused", "_read_paused", "_lost", "_gone", "lost_exc", "eof", "error",
        "status", "reason", "headers", "chunks", "buffered", "headers_done", "complete", "received_any",
        "keep_alive", "http_version", "_informational", "_close_after",
    )  # fmt: skip

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.alive = True  # False once closed, at EOF, reset, or after a protocol error
        self.active = False  # a response is expected (else incoming bytes are unsolicited)
        self.idle_since = 0.0
        self._waiter: asyncio.Future[bool] | None = None
        self._write_waiter: asyncio.Future[bool] | None = None
        self._write_paused = False
        self._read_paused = False
        self._lost: asyncio.Future[None] | None = None
        self._gone = False  # connection_lost was called
        self.lost_exc: BaseException | None = None
        self.eof = False
        self.error: BaseException | None = None
        self.begin(False)
        self.active = False

    # -- per-response state -------------------------------------------------------------------------

    def begin(self, close_after: bool) -> None:
        """Reset the response state before sending a request."""
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.received_any = False
        self.keep_alive = False
        self.http_version = b"HTTP/1.1"
        self._informational = False
        self._close_after = close_after
        self.active = True

    def take_chunks(self) -> bytes:
        """All buffered body bytes as one piece (resumes reading if it was paused)."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self._read_paused:
            self._read_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    def until_close(self) -> bool:
        """The response body is delimited by the end of the connection (no length, not chunked)."""
        if self.status < 200 or self.status in (204, 304):
            return False
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"content-length":
                return False
            if lname == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True

    # -- httptools callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _ExtraMessage

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200 and status != 101:  # 1xx informational: skip it, the real response follows
            self.headers = []
            self.reason = b""
            self._informational = True
            return
        self.status = status
        version = self._parser.get_http_version()
        if version != "1.1":
            self.http_version = b"HTTP/" + version.encode()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.keep_alive = self._parser.should_keep_alive() and not self._close_after
        self.complete = True

    # -- asyncio Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if not self.active or self.error is not None:
            self.close()  # bytes on an idle connection (e.g. a 408 before closing): never reuse it
            return
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            self.error = HttpParserError("connection upgrade is not supported")
            self.close()
        except HttpParserError as exc:
            if isinstance(exc.__context__, _ExtraMessage):
                self.keep_alive = False  # the response is complete; unexpected bytes followed it
            else:
                self.error = exc
                self.close()
        if self.buffered > _HIGH_WATER and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self.alive = False
        self._wake()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self.alive = False
        self.eof = True
        if exc is not None and self.lost_exc is None:
            self.lost_exc = exc
        self._wake()
        self._write_paused = False
        writer = self._write_waiter
        if writer is not None and not writer.done():
            writer.set_result(True)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        writer = self._write_waiter
        if writer is not None and not writer.done():
            writer.set_result(True)

    # -- used by the transport ---------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def usable(self) -> bool:
        return self.alive and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.alive = False
        self.active = False
        if self.transport is not None:
            self.transport.close()

    def lost_future(self) -> asyncio.Future[None]:
        """Resolves once the transport reported `connection_lost` (for a clean `aclose`)."""
        if self._lost is None:
            self._lost = self._loop.create_future()
            if self._gone or self.transport is None:
                self._lost.set_result(None)
        return self._lost

    async def write(self, data: bytes, timeout: float | None, request: httpx.Request) -> None:
        """Write; wait for the buffer to drain only if the transport asked us to pause."""
        transport = self.transport
        if transport is None or self.eof or transport.is_closing():
            raise self._read_failure(request, writing=True)
        transport.write(data)
        if not self._write_paused:
            return
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._write_waiter = waiter
        timer = None if timeout is None else self._loop.call_later(timeout, expire, waiter)
        try:
            ok = await waiter
        finally:
            self._write_waiter = None
            if timer is not None:
                timer.cancel()
        if not ok:
            raise httpx.WriteTimeout("timed out writing the request", request=request)
        if self.eof and not self.received_any:
            raise self._read_failure(request, writing=True)

    async def receive(self, timeout: float | None, request: httpx.Request) -> None:
        """Wait until more of the response arrived (or it ended); raise the mapped httpx error on failure."""
        if self.error is None and not self.eof:
            waiter: asyncio.Future[bool] = self._loop.create_future()
            self._waiter = waiter
            if timeout is None:
                try:
                    await waiter
                finally:
                    self._waiter = None
            else:
                timer = self._loop.call_later(timeout, expire, waiter)
                try:
                    ok = await waiter
                finally:
                    self._waiter = None
                    timer.cancel()
                if not ok:
                    raise httpx.ReadTimeout("timed out reading the response", request=request)
        if self.chunks or self.complete:
            return
        if self.error is not None:
            raise httpx.RemoteProtocolError(f"invalid HTTP response: {self.error}", request=request)
        if self.eof:
            if self.headers_done and self.until_close():
                self.complete = True
                self.keep_alive = False
                return
            raise self._read_failure(request)

    def _read_failure(self, request: httpx.Request, writing: bool = False) -> httpx.TransportError:
        exc = self.lost_exc
        if exc is not None:
            message = str(exc) or type(exc).__name__
            if writing:
                return httpx.WriteError(message, request=request)
            return httpx.ReadError(message, request=request)
        if not self.received_any:
            return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body", request=request
        )
