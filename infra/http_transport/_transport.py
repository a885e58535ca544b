"""`FastAsyncTransport`: HTTP/1.1 for `httpx.AsyncClient` over plain asyncio + httptools, with a lean pool."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

import httpx

from infra.http_transport._connection import Connection, expire

_NO_TIMEOUTS: dict[str, float | None] = {}
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_SPECIAL = frozenset((b"host", b"connection", b"content-length", b"transfer-encoding"))
_VERSION_CRLF = b" HTTP/1.1\r\n"
_COLON = b": "
_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_JOIN_LIMIT = 256 * 1024  # bodies up to this size go out in the same write as the head


def default_ssl_context() -> ssl.SSLContext:
    """System defaults, with certifi's CA bundle when it is installed."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi ships with httpx
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _Pool:
    """Connections to one origin: LIFO idle deque, a set of all open ones, a permit counter with waiters."""

    __slots__ = ("host", "port", "ssl", "server_hostname", "limit", "expiry", "active", "waiters", "idle", "conns")

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None, limit: int, expiry: float) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.server_hostname = host if ssl_context is not None else None
        self.limit = limit
        self.expiry = expiry
        self.active = 0  # requests holding a permit (each uses one connection)
        self.waiters: deque[asyncio.Future[bool]] = deque()
        self.idle: deque[Connection] = deque()
        self.conns: set[Connection] = set()

    async def acquire(self, timeout: float | None, request: httpx.Request) -> None:
        """Slow path: wait for a permit. Invariant: live waiters exist only while `active == limit`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, expire, waiter)
        try:
            granted = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed a permit, then cancelled before resuming
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not granted:
            raise httpx.PoolTimeout("timed out waiting for a connection from the pool", request=request)

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)  # the permit passes on; `active` is unchanged
                return
        self.active -= 1

    def take(self) -> Connection | None:
        """The most recently used idle connection that is still open and fresh, or None."""
        idle = self.idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < self.expiry:
                return conn
            self.discard(conn)
        return None

    def finish(self, conn: Connection, reuse: bool) -> None:
        """A response is done with its connection: back to the pool or closed; the permit is released."""
        if reuse and conn.keep_alive and conn.usable():
            conn.active = False
            now = conn.idle_since = time.monotonic()
            idle = self.idle
            idle.append(conn)
            while not idle[0].usable() or now - idle[0].idle_since >= self.expiry:
                self.discard(idle.popleft())
                if not idle:
                    break
        else:
            self.discard(conn)
        self.release()

    def discard(self, conn: Connection) -> None:
        conn.close()
        self.conns.discard(conn)


class _ResponseStream(httpx.AsyncByteStream):
    """The response body, yielded as it arrives (one piece per network read)."""

    __slots__ = ("_conn", "_pool", "_request", "_timeout")

    def __init__(self, conn: Connection, pool: _Pool, request: httpx.Request, timeout: float | None) -> None:
        self._conn: Connection | None = conn
        self._pool = pool
        self._request = request
        self._timeout = timeout

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        try:
            while not conn.chunks and not conn.complete:
                await conn.receive(self._timeout, self._request)
        except BaseException:
            self._finish(conn, False)
            raise
        if conn.chunks:
            data = conn.take_chunks()
            if conn.complete:
                self._finish(conn, True)
            return data
        self._finish(conn, True)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            self._finish(conn, conn.complete)  # closed before the end: the connection is dirty, drop it

    def _finish(self, conn: Connection, reuse: bool) -> None:
        self._conn = None
        self._pool.finish(conn, reuse)


class FastAsyncTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 transport for `httpx.AsyncClient`: asyncio Protocol + httptools, no httpcore/anyio/h11.

    Per origin: up to `max_connections_per_host` concurrent requests (excess ones wait, bounded by the
    `pool` timeout), idle keep-alive connections reused LIFO and dropped after `keepalive_expiry_s`.
    A reused connection found dead before any response byte is retried once on a fresh connection
    (replayable bodies only). No HTTP/2, no proxies.
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int = 512,
        keepalive_expiry_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections_per_host < 1:
            raise ValueError("max_connections_per_host must be >= 1")
        self._limit = max_connections_per_host
        self._expiry = keepalive_expiry_s
        self._ssl_context = ssl_context
        self._pools: dict[tuple[bytes, bytes, int | None], _Pool] = {}
        self.connections_opened = 0  # total connections established (for tests and stats)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", _NO_TIMEOUTS)
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._new_pool(key, request)
        head, body, source, chunked, close_after = await _encode(request)
        is_head = request.method == "HEAD"
        if pool.active < pool.limit:
            pool.active += 1
        else:
            await pool.acquire(timeouts.get("pool"), request)
        connect_timeout = timeouts.get("connect")
        read_timeout = timeouts.get("read")
        write_timeout = timeouts.get("write")
        conn: Connection | None = None
        try:
            conn = pool.take() if pool.idle else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(pool, connect_timeout, request)
            try:
                await _exchange(conn, head, body, source, chunked, close_after, write_timeout, read_timeout, request)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                if not reused or conn.received_any or source is not None:
                    raise
                # The idle connection had been closed by the peer: retry once on a fresh one.
                pool.discard(conn)
                conn = None
                conn = await self._connect(pool, connect_timeout, request)
                await _exchange(conn, head, body, source, chunked, close_after, write_timeout, read_timeout, request)
            if is_head:
                conn.complete = True
                conn.keep_alive = False
                conn.chunks = []
            return httpx.Response(
                conn.status,
                headers=conn.headers,
                stream=_ResponseStream(conn, pool, request, read_timeout),
                extensions={"http_version": conn.http_version, "reason_phrase": conn.reason},
            )
        except BaseException:
            if conn is not None:
                pool.discard(conn)
            pool.release()
            raise

    async def aclose(self) -> None:
        """Close every connection (idle or in use) and wait briefly until the sockets are released."""
        pools = list(self._pools.values())
        self._pools.clear()
        lost: list[asyncio.Future[None]] = []
        for pool in pools:
            for conn in pool.conns:
                lost.append(conn.lost_future())
                conn.close()
            pool.conns.clear()
            pool.idle.clear()
        if lost:
            await asyncio.wait(lost, timeout=5.0)

    def _new_pool(self, key: tuple[bytes, bytes, int | None], request: httpx.Request) -> _Pool:
        scheme, host, port = key
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme.decode()!r}", request=request)
        ssl_context = None
        if scheme == b"https":
            if self._ssl_context is None:
                self._ssl_context = default_ssl_context()
            ssl_context = self._ssl_context
        pool = _Pool(host.decode("ascii"), port or default_port, ssl_context, self._limit, self._expiry)
        self._pools[key] = pool
        return pool

    async def _connect(self, pool: _Pool, timeout: float | None, request: httpx.Request) -> Connection:
        loop = asyncio.get_running_loop()
        conn = Connection(loop)
        server_hostname = pool.server_hostname
        if server_hostname is not None:
            sni = request.extensions.get("sni_hostname")
            if sni:
                server_hostname = sni.decode("ascii") if isinstance(sni, bytes) else str(sni)
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn, pool.host, pool.port, ssl=pool.ssl, server_hostname=server_hostname
                )
        except TimeoutError as exc:  # (a subclass of OSError: must come first)
            conn.close()
            raise httpx.ConnectTimeout("timed out connecting", request=request) from exc
        except OSError as exc:
            conn.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        pool.conns.add(conn)
        self.connections_opened += 1
        return conn


async def _encode(request: httpx.Request) -> tuple[bytes, bytes, AsyncIterator[bytes] | None, bool, bool]:
    """(head, body bytes, streaming body source or None, chunked, close after) for a request."""
    url = request.url
    parts = [request.method.encode("ascii"), b" ", url.raw_path, _VERSION_CRLF]
    has_host = framed = chunked = close_after = False
    raw = request.headers.raw
    for name, value in raw:
        lname = name.lower()
        if lname in _SPECIAL:
            if lname == b"host":
                has_host = True
            elif lname == b"connection":
                close_after = b"close" in value.lower()
            else:
                framed = True
                if lname == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
        parts += (name, _COLON, value, _CRLF)
    lines = len(raw) + 2
    if not has_host:
        parts += (b"Host", _COLON, url.netloc, _CRLF)
        lines += 1
    stream = request.stream
    source: AsyncIterator[bytes] | None = None
    body = b""
    if isinstance(stream, httpx.ByteStream):
        body = await request.aread()
        if chunked and body:
            body = b"%x\r\n%b\r\n%b" % (len(body), body, _LAST_CHUNK)
        elif chunked:
            body = _LAST_CHUNK
        elif body and not framed:
            parts += (b"Content-Length", _COLON, str(len(body)).encode(), _CRLF)
            lines += 1
    else:
        if not isinstance(stream, httpx.AsyncByteStream):
            raise RuntimeError("FastAsyncTransport needs an async request body stream")
        if not framed:
            parts += (b"Transfer-Encoding", _COLON, b"chunked", _CRLF)
            lines += 1
            chunked = True
        source = stream.__aiter__()
    parts.append(_CRLF)
    head = b"".join(parts)
    # Each line ends in exactly one CRLF: a CR or LF inside a name, value or the target would split it.
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("CR or LF in the request line or a header", request=request)
    return head, body, source, chunked, close_after


async def _exchange(
    conn: Connection,
    head: bytes,
    body: bytes,
    source: AsyncIterator[bytes] | None,
    chunked: bool,
    close_after: bool,
    write_timeout: float | None,
    read_timeout: float | None,
    request: httpx.Request,
) -> None:
    """Send the request and wait until the response head (status + headers) arrived."""
    conn.begin(close_after)
    if source is None:
        if len(body) <= _JOIN_LIMIT:
            await conn.write(head + body if body else head, write_timeout, request)
        else:
            await conn.write(head, write_timeout, request)
            await conn.write(body, write_timeout, request)
    else:
        await conn.write(head, write_timeout, request)
        async for chunk in source:
            if chunk:
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk, write_timeout, request)
        if chunked:
            await conn.write(_LAST_CHUNK, write_timeout, request)
    while not conn.headers_done:
        await conn.receive(read_timeout, request)
