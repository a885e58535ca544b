"""Delivering webhooks: signed per attempt, retried with backoff (never slept for real), Retry-After
honoured within the cap, redirects never followed, refused URLs never requested.

Two kinds of receiver: a real HTTP/1.1 server on 127.0.0.1 (asyncio + h11, a free port) for what only a
real socket shows (a 302 that is not followed, headers as they arrive), ``httpx.MockTransport`` for the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from schemas.config_webhooks import WebhooksConfig
from schemas.errors import ConfigInvalid
from stages.webhooks import backoff_s, verify
from workers.webhook_sender import (
    NOT_ALLOWED,
    USER_AGENT,
    DeliveryOutcome,
    WebhookSender,
    retry_after_s,
    webhook_secret,
)

SECRET = b"whsec-test"
PAYLOAD = json.dumps({"id": "req_1", "object": "chat.completion", "status": "completed"}).encode()
WEBHOOK_ID = "wh_0192f1aa"
START = 1_800_000_000.0


def config(**overrides: object) -> WebhooksConfig:
    values: dict[str, object] = {"allow": ["https://hooks.example.com/"],
                                 "secret": "env:GATEWAY_WEBHOOK_SECRET", "max_attempts": 5,
                                 "first_backoff_s": 1.0, "max_backoff_s": 30.0, "timeout_s": 5.0}
    values.update(overrides)
    return WebhooksConfig.model_validate(values)


@dataclass
class FakeTime:
    """The sender's clock and sleep: a sleep only moves the clock and is recorded."""

    now: float = START
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sender(settings: WebhooksConfig, time: FakeTime, transport: httpx.AsyncBaseTransport | None = None,
           rand: Callable[[], float] = lambda: 0.5) -> WebhookSender:
    return WebhookSender(settings, SECRET, transport=transport, clock=time.clock, sleep=time.sleep, rand=rand)


def scripted(answers: list[httpx.Response | Exception], seen: list[httpx.Request]) -> httpx.MockTransport:
    """A transport answering each request with the next of ``answers`` (the last one repeats)."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle)


def assert_signed(headers: httpx.Headers | dict[str, str], body: bytes, at: float) -> None:
    verify(SECRET, headers["x-gateway-signature"], headers["x-gateway-webhook-id"], body, now=at, tolerance_s=1)
    assert headers["x-gateway-timestamp"] == str(int(at))
    assert headers["x-gateway-signature"].startswith(f"t={int(at)},v1=")


# -- a real receiver --------------------------------------------------------------------------------------

@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A real HTTP/1.1 server on 127.0.0.1 (asyncio + h11): records each request, answers the next of
    ``answers`` (status, extra headers; the last one repeats)."""

    def __init__(self, answers: list[tuple[int, list[tuple[str, str]]]]) -> None:
        self.answers = answers
        self.received: list[Received] = []
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._serve(h11.Connection(h11.SERVER), reader, writer)
        finally:
            writer.close()

    async def _serve(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                self.received.append(Received(request.method.decode(), request.target.decode(),
                                              {k.decode(): v.decode() for k, v in request.headers}, body))
                status, extra = self.answers[min(len(self.received), len(self.answers)) - 1]
                headers = [(k.encode(), v.encode()) for k, v in extra] + [(b"content-length", b"0")]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
            else:  # ConnectionClosed, PAUSED
                return


@pytest.fixture
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[Receiver]:
    server = Receiver(request.param)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("receiver", [[(503, []), (204, [])]], indirect=True)
async def test_real_receiver_retry_then_success_each_attempt_signed_anew(receiver: Receiver) -> None:
    time = FakeTime()
    async with sender(config(allow=[receiver.url("/hooks/")]), time, rand=lambda: 1.0) as webhooks:
        outcome = await webhooks.deliver(receiver.url("/hooks/done?job=7"), PAYLOAD, WEBHOOK_ID)
    assert outcome == DeliveryOutcome(delivered=True, attempts=2, last_status=204, last_error="")
    assert time.slept == [backoff_s(1, 1.0, 30.0, lambda: 1.0)] == [1.0]
    first, second = receiver.received
    for got, at in ((first, START), (second, START + 1.0)):
        assert (got.method, got.path, got.body) == ("POST", "/hooks/done?job=7", PAYLOAD)
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"] == USER_AGENT
        assert got.headers["x-gateway-webhook-id"] == WEBHOOK_ID
        assert_signed(got.headers, got.body, at)
    assert first.headers["x-gateway-signature"] != second.headers["x-gateway-signature"]


@pytest.mark.parametrize("receiver", [[(302, [("location", "/hooks/elsewhere")]), (200, [])]], indirect=True)
async def test_real_receiver_redirect_is_a_failure_never_followed(receiver: Receiver) -> None:
    time = FakeTime()
    async with sender(config(allow=[receiver.url("/hooks/")]), time) as webhooks:  # the target is allowed too
        outcome = await webhooks.deliver(receiver.url("/hooks/"), PAYLOAD, WEBHOOK_ID)
    assert not outcome.delivered
    assert (outcome.attempts, outcome.last_status) == (1, 302)
    assert "redirect" in outcome.last_error and "/hooks/elsewhere" in outcome.last_error
    assert [r.path for r in receiver.received] == ["/hooks/"]  # the allowed target was never requested
    assert time.slept == []


@pytest.mark.parametrize("receiver", [[(429, [("retry-after", "7")]), (200, [])]], indirect=True)
async def test_real_receiver_429_retry_after_is_waited(receiver: Receiver) -> None:
    time = FakeTime()
    async with sender(config(allow=[receiver.url()]), time, rand=lambda: 0.0) as webhooks:
        outcome = await webhooks.deliver(receiver.url(), PAYLOAD, WEBHOOK_ID)
    assert (outcome.delivered, outcome.attempts, outcome.last_status) == (True, 2, 200)
    assert time.slept == [7.0]
    assert len(receiver.received) == 2


# -- a mock transport -------------------------------------------------------------------------------------

async def test_a_disallowed_url_makes_no_request() -> None:
    seen: list[httpx.Request] = []
    time = FakeTime()
    async with sender(config(), time, scripted([httpx.Response(200)], seen)) as webhooks:
        for url in ("https://hooks.example.com.evil.com/", "https://hooks.example.com@evil.com/",
                    "http://hooks.example.com/", "file:///etc/passwd"):
            outcome = await webhooks.deliver(url, PAYLOAD, WEBHOOK_ID)
            assert outcome == DeliveryOutcome(delivered=False, attempts=0, last_status=None, last_error=NOT_ALLOWED)
    assert seen == [] and time.slept == []


async def test_an_empty_allow_list_sends_nothing() -> None:
    seen: list[httpx.Request] = []
    async with sender(WebhooksConfig(), FakeTime(), scripted([httpx.Response(200)], seen)) as webhooks:
        assert (await webhooks.deliver("https://hooks.example.com/", PAYLOAD, WEBHOOK_ID)).attempts == 0
    assert seen == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
async def test_a_4xx_gives_up_at_once(status: int) -> None:
    seen: list[httpx.Request] = []
    time = FakeTime()
    async with sender(config(), time, scripted([httpx.Response(status), httpx.Response(200)], seen)) as webhooks:
        outcome = await webhooks.deliver("https://hooks.example.com/cb", PAYLOAD, WEBHOOK_ID)
    assert outcome == DeliveryOutcome(delivered=False, attempts=1, last_status=status, last_error=f"HTTP {status}")
    assert len(seen) == 1 and time.slept == []


async def test_max_attempts_reached_with_capped_backoffs_between() -> None:
    seen: list[httpx.Request] = []
    time = FakeTime()
    settings = config(max_attempts=6, first_backoff_s=2.0, max_backoff_s=10.0)
    async with sender(settings, time, scripted([httpx.Response(500)], seen), rand=lambda: 1.0) as webhooks:
        outcome = await webhooks.deliver("https://hooks.example.com/cb", PAYLOAD, WEBHOOK_ID)
    assert outcome == DeliveryOutcome(delivered=False, attempts=6, last_status=500, last_error="HTTP 500")
    assert len(seen) == 6
    assert time.slept == [2.0, 4.0, 8.0, 10.0, 10.0]  # no wait after the last attempt
    assert {r.headers["x-gateway-webhook-id"] for r in seen} == {WEBHOOK_ID}
    for request, at in zip(seen, [START, START + 2, START + 6, START + 14, START + 24, START + 34], strict=True):
        assert_signed(request.headers, request.content, at)


async def test_retry_after_is_capped_at_max_backoff() -> None:
    seen: list[httpx.Request] = []
    time = FakeTime()
    http_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    answers: list[httpx.Response | Exception] = [httpx.Response(503, headers={"retry-after": "86400"}),
                                                 httpx.Response(429, headers={"retry-after": http_date}),
                                                 httpx.Response(202)]
    async with sender(config(), time, scripted(answers, seen), rand=lambda: 0.25) as webhooks:
        outcome = await webhooks.deliver("https://hooks.example.com/", PAYLOAD, WEBHOOK_ID)
    assert (outcome.delivered, outcome.attempts, outcome.last_status) == (True, 3, 202)
    # capped at max_backoff_s; an HTTP date is not read, so the jittered backoff (0.25 × 2 s) applies
    assert time.slept == [30.0, 0.5]


async def test_network_errors_are_retried() -> None:
    seen: list[httpx.Request] = []
    time = FakeTime()
    answers: list[httpx.Response | Exception] = [httpx.ConnectError("connection refused"),
                                                 httpx.ReadTimeout("read timed out"), httpx.Response(200)]
    async with sender(config(), time, scripted(answers, seen)) as webhooks:
        outcome = await webhooks.deliver("https://hooks.example.com/", PAYLOAD, WEBHOOK_ID)
    assert (outcome.delivered, outcome.attempts, outcome.last_status) == (True, 3, 200)
    assert time.slept == [0.5, 1.0]


async def test_network_errors_until_max_attempts_leave_no_status() -> None:
    seen: list[httpx.Request] = []
    async with sender(config(max_attempts=2), FakeTime(),
                      scripted([httpx.ConnectError("connection refused")], seen)) as webhooks:
        outcome = await webhooks.deliver("https://hooks.example.com/", PAYLOAD, WEBHOOK_ID)
    assert outcome == DeliveryOutcome(delivered=False, attempts=2, last_status=None,
                                      last_error="ConnectError: connection refused")


async def test_an_attempt_is_cut_at_timeout_s() -> None:
    calls = 0

    async def hang(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    async with sender(config(max_attempts=2, timeout_s=0.05), FakeTime(), httpx.MockTransport(hang)) as webhooks:
        outcome = await webhooks.deliver("https://hooks.example.com/", PAYLOAD, WEBHOOK_ID)
    assert outcome == DeliveryOutcome(delivered=False, attempts=2, last_status=None,
                                      last_error="no answer within 0.05 s")
    assert calls == 2


def test_webhook_secret_comes_from_the_referenced_variable() -> None:
    assert webhook_secret(config(), {"GATEWAY_WEBHOOK_SECRET": "s3cret"}) == b"s3cret"
    with pytest.raises(ConfigInvalid, match="GATEWAY_WEBHOOK_SECRET"):
        webhook_secret(config(), {})
    with pytest.raises(ConfigInvalid, match="not set"):
        webhook_secret(WebhooksConfig(), {})


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 1.5 ", 1.5), ("0", 0.0), (None, None), ("", None), ("-3", None), ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("1e9", None), ("nan", None),
])
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after_s(value) == seconds
