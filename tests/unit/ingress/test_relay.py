"""Answering the caller: the reply as JSON or SSE, ingress's own 504 past the deadline, refusals, and the
``requests`` record of every request ingress ends itself."""

from __future__ import annotations

import time

import orjson
import pytest

from ingress import relay
from ingress.admission import Overload
from ingress.asgi import Message
from ingress.intake import Intake
from ingress.relay import Relay, overhead_header
from ingress.replies import ReplyWaiter
from ingress.surfaces import OPENAI
from schemas.config import ApiKey, hash_api_key
from schemas.envelope import Envelope, Reply
from schemas.errors import InvalidRequest, ProviderError, RateLimited
from schemas.events import RequestCompleted
from schemas.governance import KeyDirectory, RateLimitStatus

KEY = ApiKey(id="k1", key_sha256=hash_api_key("sk-relay"), tenant="acme")
ID_HEADER = (b"x-gateway-request-id", b"rid")


class Records:
    def __init__(self) -> None:
        self.added: list[RequestCompleted] = []

    def add(self, record: RequestCompleted) -> None:
        self.added.append(record)


class Sent:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(dict(message))

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def make_relay() -> tuple[Relay, ReplyWaiter, Records]:
    waiter = ReplyWaiter("ing")
    records = Records()
    directory = KeyDirectory(config_keys=[KEY.virtual()])
    return Relay(waiter, Overload(), records, lambda: directory), waiter, records  # type: ignore[arg-type]


def envelope(*, stream: bool = False, timeout_s: float = 30.0) -> Envelope:
    now = time.time()
    return Envelope(request_id="rid", received_at=now, deadline=now + timeout_s, reply_to="gw.reply.ing.rid",
                    stream=stream, api_key_hash=KEY.key_sha256, body={}, model_requested="m")


async def test_a_response_is_relayed_with_the_gateways_headers() -> None:
    r, waiter, records = make_relay()
    pending = waiter.open("rid")
    pending.queue.put_nowait(Reply(kind="response", request_id="rid", body={"id": "c1"}, provider_ms=5.0))
    sent = Sent()
    await r.response(sent, OPENAI, pending, envelope(), time.perf_counter(), ID_HEADER)
    assert sent.status == 200 and orjson.loads(sent.body) == {"id": "c1"}
    assert sent.headers[b"x-gateway-request-id"] == b"rid" and b"x-gateway-overhead-ms" in sent.headers
    assert records.added == []  # the chain records what it answered


async def test_an_error_reply_keeps_its_status() -> None:
    r, waiter, _ = make_relay()
    pending = waiter.open("rid")
    error = ProviderError("upstream down", status_code=502).info()
    pending.queue.put_nowait(Reply(kind="error", request_id="rid", status=502, error=error))
    sent = Sent()
    await r.response(sent, OPENAI, pending, envelope(), time.perf_counter(), ID_HEADER)
    assert sent.status == 502 and orjson.loads(sent.body)["error"]["message"] == "upstream down"


async def test_past_the_deadline_ingress_answers_504_and_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "DEADLINE_GRACE_S", 0.0)
    r, waiter, records = make_relay()
    pending = waiter.open("rid")
    sent = Sent()
    await r.response(sent, OPENAI, pending, envelope(timeout_s=0.01), time.perf_counter(), ID_HEADER)
    assert sent.status == 504 and pending.outcome is not None
    (record,) = records.added
    assert (record.stage, record.status_code, record.tenant, record.api_key_id) == ("ingress", 504, "acme", "k1")


async def test_a_stream_is_relayed_chunk_by_chunk_then_done() -> None:
    r, waiter, _ = make_relay()
    pending = waiter.open("rid", stream=True)
    for seq in range(2):
        pending.queue.put_nowait(Reply(kind="chunk", request_id="rid", seq=seq, body={"n": seq}, ttfb_ms=3.0))
    pending.queue.put_nowait(Reply(kind="end", request_id="rid", seq=2))
    sent = Sent()
    await r.stream(sent, OPENAI, pending, envelope(stream=True), time.perf_counter(), ID_HEADER)
    assert sent.status == 200 and sent.headers[b"content-type"].startswith(b"text/event-stream")
    assert sent.body == b'data: {"n":0}\n\ndata: {"n":1}\n\ndata: [DONE]\n\n'
    assert sent.messages[-1]["more_body"] is False


async def test_a_stream_that_fails_before_its_first_chunk_is_a_plain_error() -> None:
    r, waiter, _ = make_relay()
    pending = waiter.open("rid", stream=True)
    error = ProviderError("no", status_code=503).info()
    pending.queue.put_nowait(Reply(kind="error", request_id="rid", error=error))
    sent = Sent()
    await r.stream(sent, OPENAI, pending, envelope(stream=True), time.perf_counter(), ID_HEADER)
    assert sent.status == 503 and sent.headers[b"content-type"] == b"application/json"


async def test_a_refusal_is_answered_and_recorded_with_what_was_read() -> None:
    r, _, records = make_relay()
    intake = Intake("rid", time.time(), key_hash=KEY.key_sha256, body={"model": "m", "stream": True, "user": "bob"})
    sent = Sent()
    error = InvalidRequest("bad tags", param="x-gateway-tags", code="invalid_tags").info()
    await r.refuse(sent, OPENAI, error, intake, time.perf_counter(), ID_HEADER)
    assert sent.status == 400 and sent.headers[b"x-gateway-request-id"] == b"rid"
    (record,) = records.added
    assert (record.request_id, record.status_code, record.error_code) == ("rid", 400, "invalid_tags")
    assert (record.model_requested, record.stream, record.user, record.tenant) == ("m", True, "bob", "acme")


def test_overhead_is_the_time_since_arrival_less_the_providers() -> None:
    name, value = overhead_header(time.perf_counter() - 0.5, provider_ms=400.0)
    assert name == b"x-gateway-overhead-ms" and 90.0 <= float(value) < 400.0


LIMITS = RateLimitStatus(limit_requests=60, remaining_requests=59, reset_requests_s=1.0, limit_tokens=1000,
                         remaining_tokens=900, reset_tokens_s=360.0)


async def test_rate_limits_and_retry_after_on_a_429() -> None:
    r, waiter, _ = make_relay()
    pending = waiter.open("rid")
    error = RateLimited("slow down", retry_after_s=2.4).info()
    pending.queue.put_nowait(Reply(kind="error", request_id="rid", status=429, error=error, ratelimit=LIMITS))
    sent = Sent()
    await r.response(sent, OPENAI, pending, envelope(), time.perf_counter(), ID_HEADER)
    assert sent.status == 429 and sent.headers[b"retry-after"] == b"3"
    assert sent.headers[b"x-ratelimit-limit-requests"] == b"60"
    assert sent.headers[b"x-ratelimit-reset-tokens"] == b"6m0s"


async def test_a_stream_sends_the_rate_limits_with_its_first_bytes() -> None:
    r, waiter, _ = make_relay()
    pending = waiter.open("rid", stream=True)
    pending.queue.put_nowait(Reply(kind="chunk", request_id="rid", seq=0, body={"n": 0}, ratelimit=LIMITS))
    pending.queue.put_nowait(Reply(kind="end", request_id="rid", seq=1))
    sent = Sent()
    await r.stream(sent, OPENAI, pending, envelope(stream=True), time.perf_counter(), ID_HEADER)
    assert sent.headers[b"x-ratelimit-remaining-requests"] == b"59"
    assert sent.headers[b"x-ratelimit-remaining-tokens"] == b"900"
