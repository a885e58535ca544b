"""The bounded httptools protocol, fed bytes through a fake transport: header size, count and time, and the
parser's refusals, each an OpenAI error body that closes the connection; a normal request reaches the app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from ingress.http_protocol import EdgeProtocol, edge_protocol, refusal_bytes
from schemas.errors import RequestHeadersTooLarge


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def connect(cls: type[EdgeProtocol] | None = None) -> tuple[EdgeProtocol, FakeTransport]:
    config = uvicorn.Config(ok_app, log_level="critical", lifespan="off")
    config.load()
    protocol = (cls or edge_protocol())(config=config, server_state=ServerState(), app_state={},
                                        _loop=asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def answer(transport: FakeTransport) -> tuple[int, dict[str, Any]]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    return int(head.split()[1]), json.loads(body)


async def test_a_normal_request_reaches_the_app() -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET /v1/models HTTP/1.1\r\nHost: g\r\nX-Ok: " + b"a" * 1000 + b"\r\n\r\n")
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200")
    assert not transport.closed
    protocol.connection_lost(None)


async def test_one_huge_header_is_431() -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    status, body = answer(transport)
    assert status == 431 and body["error"]["code"] == "headers_too_large"
    assert transport.closed


async def test_a_head_that_never_ends_is_431_before_it_is_buffered_whole() -> None:
    protocol, transport = connect(edge_protocol(max_head_bytes=4096))
    protocol.data_received(b"GET / HTTP/1.1\r\nX-Big: ")
    for _ in range(10):
        protocol.data_received(b"a" * 1000)
    status, _ = answer(transport)
    assert status == 431 and transport.closed


async def test_too_many_headers_is_431() -> None:
    protocol, transport = connect(edge_protocol(max_headers=16))
    protocol.data_received(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(17)) + b"\r\n")
    assert answer(transport)[0] == 431


async def test_a_malformed_header_is_400_in_the_error_shape() -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n")
    status, body = answer(transport)
    assert status == 400 and body["error"]["code"] == "invalid_http"
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_slow_headers_are_408_and_a_silent_connection_closed() -> None:
    protocol, transport = connect(edge_protocol(header_timeout_s=0.05))
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: g\r\n")
    await asyncio.sleep(0.1)
    status, body = answer(transport)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    protocol, transport = connect(edge_protocol(header_timeout_s=0.05))
    await asyncio.sleep(0.1)
    assert transport.closed and transport.written == b""


async def test_headers_in_time_cancel_the_timer() -> None:
    protocol, transport = connect(edge_protocol(header_timeout_s=0.05))
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: g\r\n\r\n")
    await asyncio.sleep(0.1)
    assert transport.written.startswith(b"HTTP/1.1 200") and not transport.closed
    protocol.connection_lost(None)


def test_refusal_bytes_is_a_complete_response() -> None:
    raw = refusal_bytes(RequestHeadersTooLarge("too big"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
