"""FastAsyncTransport over real TCP on 127.0.0.1: the mock provider (uvicorn, in-process) and tiny raw servers."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from infra.doubles.mock_provider.asgi import StreamCut
from infra.doubles.mock_provider.server import MockProvider
from infra.http_transport import FastAsyncTransport

pytestmark = pytest.mark.server

CHAT = "/v1/chat/completions"


def chat(text: str, stream: bool = False) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}


def _no_stream_cuts(record: logging.LogRecord) -> bool:
    return not (record.exc_info is not None and isinstance(record.exc_info[1], StreamCut))


@pytest.fixture
async def mock_url() -> AsyncIterator[str]:
    """The mock provider served by uvicorn in this test's event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(MockProvider(), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(_no_stream_cuts)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
        uvicorn_log.removeFilter(_no_stream_cuts)


@pytest.fixture
async def transport() -> AsyncIterator[FastAsyncTransport]:
    t = FastAsyncTransport()
    try:
        yield t
    finally:
        await t.aclose()


@pytest.fixture
async def client(mock_url: str, transport: FastAsyncTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, base_url=mock_url, timeout=5) as c:
        yield c


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """A raw asyncio server; `handler(reader, writer, connection_index)` scripts each connection."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl = ssl_context
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl else 'http'}://127.0.0.1:{port}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        index = self.connections
        self.connections += 1
        try:
            await self.handler(reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)
            self.writers.discard(writer)

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()  # handlers blocked on a read see EOF and return
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        await self.server.wait_closed()
        await asyncio.sleep(0)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request (Content-Length or chunked body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        return head, b"".join(parts)
    length = 0
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length) if length else b""


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


# -- the mock provider -------------------------------------------------------------------------------


async def test_json_round_trip(client: httpx.AsyncClient) -> None:
    r = await client.post(CHAT, json=chat("hello"))
    assert r.status_code == 200
    assert r.http_version == "HTTP/1.1"
    assert r.reason_phrase == "OK"
    assert r.headers["content-type"] == "application/json"
    assert r.json()["choices"][0]["message"]["content"] == "Echo: hello"
    models = await client.get("/v1/models")
    assert models.status_code == 200 and models.json()["object"] == "list"


async def test_keep_alive_reuses_one_connection(client: httpx.AsyncClient, transport: FastAsyncTransport) -> None:
    for i in range(5):
        r = await client.post(CHAT, json=chat(f"n{i}"))
        assert r.json()["choices"][0]["message"]["content"] == f"Echo: n{i}"
    assert transport.connections_opened == 1


async def test_error_status_and_headers_pass_through(client: httpx.AsyncClient) -> None:
    r = await client.post(CHAT, json=chat("x [[mock status=503 retry_after=1]]"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "error" in r.json()


async def test_sse_stream_yields_chunks_as_they_arrive(client: httpx.AsyncClient) -> None:
    text = "a stream in several pieces [[mock chunk_delay_ms=40]]"
    arrivals: list[tuple[float, bytes]] = []
    async with client.stream("POST", CHAT, json=chat(text, stream=True)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for piece in r.aiter_raw():
            arrivals.append((time.monotonic(), piece))
    body = b"".join(p for _, p in arrivals)
    assert body.endswith(b"data: [DONE]\n\n")
    # Paced events come out one read at a time, not buffered until the end.
    assert len(arrivals) >= 5
    assert arrivals[-1][0] - arrivals[0][0] >= 0.1
    payloads = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    content = "".join(orjson.loads(p)["choices"][0]["delta"].get("content") or "" for p in payloads[:-1])
    assert content == "Echo: a stream in several pieces"


async def test_cut_stream_raises(client: httpx.AsyncClient, transport: FastAsyncTransport) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        async with client.stream("POST", CHAT, json=chat("cut me off please [[mock cut_after=1]]", True)) as r:
            async for _ in r.aiter_raw():
                pass
    # The broken connection is not reused.
    assert (await client.post(CHAT, json=chat("after"))).status_code == 200
    assert transport.connections_opened == 2


async def test_read_timeout(client: httpx.AsyncClient, transport: FastAsyncTransport) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await client.post(CHAT, json=chat("x [[mock timeout]]"), timeout=httpx.Timeout(5, read=0.2))
    assert (await client.post(CHAT, json=chat("after"))).status_code == 200
    assert transport.connections_opened == 2


async def test_streamed_request_body(client: httpx.AsyncClient) -> None:
    payload = orjson.dumps(chat("sent in pieces"))

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    r = await client.post(CHAT, content=pieces(), headers={"content-type": "application/json"})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Echo: sent in pieces"


async def test_early_aclose_drops_the_connection(client: httpx.AsyncClient, transport: FastAsyncTransport) -> None:
    text = "a long enough stream to stop early [[mock chunk_delay_ms=30]]"
    async with client.stream("POST", CHAT, json=chat(text, stream=True)) as r:
        async for _ in r.aiter_raw():
            break  # aclose() with the body unread
    assert transport.connections_opened == 1
    r2 = await client.post(CHAT, json=chat("next"))
    assert r2.json()["choices"][0]["message"]["content"] == "Echo: next"
    assert transport.connections_opened == 2  # the dirty connection was not put back


async def test_pool_limit_and_pool_timeout(mock_url: str) -> None:
    transport = FastAsyncTransport(max_connections_per_host=1)
    async with httpx.AsyncClient(transport=transport, base_url=mock_url, timeout=5) as client:
        slow = asyncio.create_task(client.post(CHAT, json=chat("slow [[mock latency_ms=300]]")))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await client.post(CHAT, json=chat("waits"), timeout=httpx.Timeout(5, pool=0.05))
        # With enough pool time the request waits for the connection and reuses it.
        waited = await client.post(CHAT, json=chat("waits"), timeout=httpx.Timeout(5, pool=2))
        assert waited.status_code == 200
        assert (await slow).status_code == 200
        assert transport.connections_opened == 1
        results = await asyncio.gather(*(client.post(CHAT, json=chat(f"q{i}")) for i in range(8)))
        assert [r.json()["choices"][0]["message"]["content"] for r in results] == [f"Echo: q{i}" for i in range(8)]
        assert transport.connections_opened == 1


async def test_64_concurrent_requests(client: httpx.AsyncClient, transport: FastAsyncTransport) -> None:
    async def one(i: int) -> str:
        if i % 2:
            r = await client.post(CHAT, json=chat(f"c{i} [[mock latency_ms=20]]"))
            content: str = r.json()["choices"][0]["message"]["content"]
            return content
        async with client.stream("POST", CHAT, json=chat(f"c{i} [[mock chunk_delay_ms=5]]", True)) as r:
            return (await r.aread()).decode()

    results = await asyncio.gather(*(one(i) for i in range(64)))
    for i, result in enumerate(results):
        assert (f"Echo: c{i}" == result) if i % 2 else result.endswith("data: [DONE]\n\n")
    assert transport.connections_opened <= 64
    again = await asyncio.gather(*(one(i) for i in range(64)))
    assert again == results or len(again) == 64
    assert transport.connections_opened <= 64  # the second wave reuses the idle ones


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(f"http://127.0.0.1:{port}/")
    assert info.value.request.url.port == port


async def test_unsupported_scheme() -> None:
    async with httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1/")


# -- raw servers ------------------------------------------------------------------------------------------


async def test_chunked_response_and_reuse() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(b"1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n")
            await writer.drain()

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            async with client.stream("GET", server.url + "/x") as r:
                pieces = [p async for p in r.aiter_raw()]
            assert b"".join(pieces) == b"hello world!"
            assert len(pieces) >= 2
        assert transport.connections_opened == 1 and server.connections == 1


async def test_read_until_close_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"the end")
        await writer.drain()

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            r = await client.get(server.url + "/")
            assert r.content == b"until the end"
        assert transport.connections_opened == 2 and server.connections == 2


async def test_http10_response_is_not_kept_alive() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!")
        await writer.drain()
        await reader.read()

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            r = await client.get(server.url + "/")
            assert (r.http_version, r.content) == ("HTTP/1.0", b"old!")
        assert transport.connections_opened == 2


async def test_idle_connection_closed_by_peer_is_replaced() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(OK_RESPONSE)
        await writer.drain()  # then close the idle keep-alive connection

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(server.url + "/")).content == b"ok"
        await asyncio.sleep(0.05)
        assert (await client.get(server.url + "/")).content == b"ok"
        assert transport.connections_opened == 2


async def test_stale_connection_is_retried_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        if index == 2:
            return  # a fresh connection closed without a byte
        if index == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            return
        writer.write(OK_RESPONSE)
        await writer.drain()
        await read_request(reader)  # the keep-alive connection dies as the next request arrives: no answer

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        assert (await client.post(server.url + "/", content=b"one")).content == b"ok"
        assert (await client.post(server.url + "/", content=b"two")).content == b"ok"
        assert transport.connections_opened == 2  # 1 reused (dead) + 1 fresh retry
        # A fresh connection closed without a response is not retried.
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.post(server.url + "/", content=b"three")
        assert server.connections == 3


async def test_fresh_connection_reset_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async with RawServer(handler) as server, httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get(server.url + "/")


async def test_invalid_response_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with RawServer(handler) as server, httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url + "/")


async def test_informational_and_head_responses() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            head, body = await read_request(reader)
            seen.append(head)
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\n" + body)
            await writer.drain()

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        r = await client.put(server.url + "/a?b=1", content=b"abc")
        assert (r.status_code, r.reason_phrase, r.content) == (201, "Created", b"abc")
        head = await client.head(server.url + "/")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "10"
    assert seen[0].startswith(b"PUT /a?b=1 HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in seen[0] and b"\r\nContent-Length: 3\r\n" in seen[0]


async def test_idle_connections_expire() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_RESPONSE)
            await writer.drain()

    transport = FastAsyncTransport(keepalive_expiry_s=0.05)
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        await client.get(server.url + "/")
        await client.get(server.url + "/")
        assert transport.connections_opened == 1
        await asyncio.sleep(0.1)
        await client.get(server.url + "/")
        assert transport.connections_opened == 2


async def test_header_injection_is_refused() -> None:
    async with httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("http://127.0.0.1:9/", headers={"x-evil": "a\r\nInjected: 1"})


async def test_extra_bytes_after_a_response_prevent_reuse() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_RESPONSE + OK_RESPONSE)  # one answer too many
            await writer.drain()

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            assert (await client.get(server.url + "/")).content == b"ok"
        assert transport.connections_opened == 2


async def test_request_connection_close_is_honoured() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_RESPONSE)
            await writer.drain()

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            assert (await client.get(server.url + "/", headers={"Connection": "close"})).content == b"ok"
        assert transport.connections_opened == 2


async def test_large_bodies_both_ways() -> None:
    size = 3 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            _, body = await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * len(body)))
            writer.write(body)
            writer.write(body[::-1])
            await writer.drain()

    payload = bytes(range(256)) * (size // 256)
    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        async with client.stream("POST", server.url + "/", content=payload) as r:
            received = bytearray()
            async for piece in r.aiter_raw():
                received += piece
                await asyncio.sleep(0.001)  # a slow reader: the transport pauses reading meanwhile
        assert bytes(received) == payload + payload[::-1]
        r2 = await client.post(server.url + "/", content=b"small")
        assert r2.content == b"smallllams"
        assert transport.connections_opened == 1


async def test_write_backpressure_and_write_timeout() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/stuck" in head:
            await release.wait()  # never read the body: the client's writes block
            return
        await asyncio.sleep(0.2)  # read late: the client must wait for the buffer to drain
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(OK_RESPONSE)
        await writer.drain()

    payload = b"x" * (64 * 1024 * 1024)
    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        try:
            assert (await client.post(server.url + "/slow", content=payload, timeout=10)).content == b"ok"
            with pytest.raises(httpx.WriteTimeout):
                await client.post(server.url + "/stuck", content=payload, timeout=httpx.Timeout(10, write=0.2))
        finally:
            release.set()


async def test_reset_mid_body_is_a_read_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST

    async with RawServer(handler) as server, httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        async with client.stream("GET", server.url + "/") as r:
            assert r.status_code == 200
            with pytest.raises(httpx.ReadError):
                await r.aread()


async def test_unsolicited_bytes_on_an_idle_connection_discard_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_RESPONSE)
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")  # but keep it open

    transport = FastAsyncTransport()
    async with RawServer(handler) as server, httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(server.url + "/")).content == b"ok"
        await asyncio.sleep(0.1)
        assert (await client.get(server.url + "/")).status_code == 200
        assert transport.connections_opened == 2


async def test_host_header_is_added_when_missing() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(OK_RESPONSE)
        await writer.drain()

    async with RawServer(handler) as server, httpx.AsyncClient(transport=FastAsyncTransport()) as client:
        request = client.build_request("GET", server.url + "/h")
        del request.headers["host"]
        assert (await client.send(request)).content == b"ok"
    assert b"\r\nHost: 127.0.0.1:" in heads[0]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_https(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:
            _, body = await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()

    transport = FastAsyncTransport(ssl_context=ssl.create_default_context(cafile=str(cert)))
    async with RawServer(handler, server_ctx) as server, httpx.AsyncClient(transport=transport) as client:
        for i in range(3):
            assert (await client.post(server.url + "/", content=b"tls%d" % i)).content == b"tls%d" % i
        assert transport.connections_opened == 1
        # The default context (certifi bundle) does not trust the self-signed certificate.
        async with httpx.AsyncClient(transport=FastAsyncTransport()) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(server.url + "/")


def test_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                await writer.drain()

        transport = FastAsyncTransport()
        async with RawServer(handler) as server, httpx.AsyncClient(transport=transport, timeout=None) as client:
            results = await asyncio.gather(*(client.post(server.url + "/", json={"i": i}) for i in range(16)))
            assert all(r.content == b"ok" for r in results)
            assert (await client.get(server.url + "/")).content == b"ok"
            assert transport.connections_opened == 16

    uvloop.run(main())
