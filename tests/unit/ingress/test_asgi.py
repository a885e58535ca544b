"""ASGI helpers: bounded body reading and OpenAI-shaped error responses, with fake receive/send."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ingress.asgi import Message, header, read_body, send_error, send_json
from schemas.errors import PayloadTooLarge, RateLimited, RequestTimeout, ServiceUnavailable


def scope(**headers: str) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


class FakeReceive:
    def __init__(self, *messages: Message) -> None:
        self.messages = list(messages)
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        return self.messages.pop(0)


def chunk(data: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


class FakeSend:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def start(self) -> Message:
        assert self.sent[0]["type"] == "http.response.start"
        return self.sent[0]

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.start["headers"])

    @property
    def body(self) -> Any:
        assert [m["type"] for m in self.sent] == ["http.response.start", "http.response.body"]
        return orjson.loads(self.sent[1]["body"])


def test_header_lookup() -> None:
    s = scope(content_length="12", x_api_key="k")
    assert header(s, b"content-length") == "12"
    assert header(s, b"x-api-key") == "k"
    assert header(s, b"authorization") is None


async def test_read_body_single_message() -> None:
    receive = FakeReceive(chunk(b'{"a": 1}', False))
    assert await read_body(scope(content_length="8"), receive, 100) == b'{"a": 1}'


async def test_read_body_several_chunks() -> None:
    receive = FakeReceive(chunk(b"ab", True), chunk(b"", True), chunk(b"cd", False))
    assert await read_body(scope(), receive, 4) == b"abcd"
    assert receive.calls == 3


async def test_declared_length_over_limit_refused_before_reading() -> None:
    receive = FakeReceive()  # any call would fail: nothing to pop
    with pytest.raises(PayloadTooLarge) as raised:
        await read_body(scope(content_length="1025"), receive, 1024)
    assert receive.calls == 0
    assert (raised.value.status_code, raised.value.code) == (413, "request_too_large")
    assert "1025" in raised.value.message


async def test_declared_length_at_limit_is_read() -> None:
    receive = FakeReceive(chunk(b"x" * 1024, False))
    assert len(await read_body(scope(content_length="1024"), receive, 1024)) == 1024


async def test_streamed_body_over_limit_refused_without_reading_on() -> None:
    receive = FakeReceive(chunk(b"x" * 600, True), chunk(b"x" * 600, True), chunk(b"x" * 600, False))
    with pytest.raises(PayloadTooLarge):
        await read_body(scope(), receive, 1000)
    assert receive.calls == 2


async def test_understated_content_length_still_bounded() -> None:
    receive = FakeReceive(chunk(b"x" * 800, True), chunk(b"x" * 800, False))
    with pytest.raises(PayloadTooLarge):
        await read_body(scope(content_length="10"), receive, 1000)


async def test_non_numeric_content_length_falls_back_to_counting() -> None:
    receive = FakeReceive(chunk(b"x" * 2000, False))
    with pytest.raises(PayloadTooLarge):
        await read_body(scope(content_length="lots"), receive, 1000)


async def test_disconnect_ends_the_body() -> None:
    receive = FakeReceive(chunk(b"part", True), {"type": "http.disconnect"})
    assert await read_body(scope(), receive, 100) == b"part"


async def test_send_json() -> None:
    send = FakeSend()
    await send_json(send, 201, {"ok": True}, [(b"x-request-id", b"r1")])
    assert send.start["status"] == 201
    raw = send.sent[1]["body"]
    assert send.headers[b"content-type"] == b"application/json"
    assert send.headers[b"content-length"] == str(len(raw)).encode()
    assert send.headers[b"x-request-id"] == b"r1"
    assert send.body == {"ok": True}


async def test_send_error_openai_shape_without_retry_after() -> None:
    send = FakeSend()
    await send_error(send, PayloadTooLarge("too big", param="body").info())
    assert send.start["status"] == 413
    assert send.body == {"error": {"message": "too big", "type": "invalid_request_error", "param": "body",
                                   "code": "request_too_large"}}
    assert b"retry-after" not in send.headers


@pytest.mark.parametrize(("retry_after_s", "header_value"), [(3.0, b"3"), (30, b"30"), (0.2, b"1"), (0.0, b"1")])
async def test_send_error_with_retry_after(retry_after_s: float, header_value: bytes) -> None:
    send = FakeSend()
    await send_error(send, RateLimited("slow down", retry_after_s=retry_after_s).info(), [(b"x-request-id", b"r")])
    assert send.start["status"] == 429
    assert send.headers[b"retry-after"] == header_value
    assert send.headers[b"x-request-id"] == b"r"
    assert send.body["error"]["code"] == "rate_limit_exceeded"


async def test_retry_after_header_never_shorter_than_the_wait() -> None:
    send = FakeSend()
    await send_error(send, ServiceUnavailable("busy", retry_after_s=1.4).info())
    assert int(send.headers[b"retry-after"]) >= 1.4


async def test_send_error_keeps_overridden_status() -> None:
    from schemas.errors import ProviderError

    send = FakeSend()
    await send_error(send, ProviderError("upstream said 400", status_code=400, code="context_length_exceeded").info())
    assert send.start["status"] == 400
    assert send.body["error"]["code"] == "context_length_exceeded"


async def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    async def slow() -> Message:  # a client sending a byte now and then (slowloris)
        await asyncio.sleep(0.02)
        return chunk(b"x", True)

    with pytest.raises(RequestTimeout) as err:
        await read_body(scope(), slow, 1000, timeout_s=0.1)
    assert err.value.status_code == 408 and err.value.code == "request_timeout"
    assert "GATEWAY_BODY_TIMEOUT_S" in err.value.message


async def test_a_single_message_over_the_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_body(scope(), FakeReceive(chunk(b"x" * 11, False)), 10)


@pytest.mark.parametrize("status", [408, 413])
async def test_refusals_before_the_body_was_read_close_the_connection(status: int) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    error = RequestTimeout("late") if status == 408 else PayloadTooLarge("big")
    await send_error(send, error.info())
    assert (b"connection", b"close") in sent[0]["headers"]
    await send_error(send, RateLimited("slow down").info())
    assert (b"connection", b"close") not in sent[2]["headers"]


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_408() -> None:
    async def never() -> Message:
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    task = asyncio.create_task(read_body(scope(), never, 1000, timeout_s=5))
    await asyncio.sleep(0.01)
    task.cancel()  # e.g. the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
