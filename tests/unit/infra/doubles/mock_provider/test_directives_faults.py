"""Per-request fault directives (`[[mock ...]]` and `x-mock-fault`) across the three wire formats."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from infra.doubles.mock_provider.asgi import StreamCut

SSE = Callable[[str], list[tuple[str | None, str]]]
OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.0-flash:generateContent"
GEMINI_STREAM = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"


def openai(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def anthropic(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude", "max_tokens": 32, "messages": [{"role": "user", "content": text}], **extra}


def gemini(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


async def test_directive_is_removed_from_echo_and_counts(client: httpx.AsyncClient) -> None:
    r = await client.post(OPENAI, json=openai("say [[mock latency_ms=1]] hi"))
    data = r.json()
    assert data["choices"][0]["message"]["content"] == "Echo: say  hi"
    assert data["usage"]["prompt_tokens"] == 2  # "say  hi" is 7 characters


async def test_latency(client: httpx.AsyncClient) -> None:
    start = time.perf_counter()
    r = await client.post(OPENAI, json=openai("hi [[mock latency_ms=60]]"))
    assert r.status_code == 200
    assert time.perf_counter() - start >= 0.06


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, "requests", "rate_limit_exceeded"),
        (500, "server_error", None),
        (400, "invalid_request_error", None),
    ],
)
async def test_status_openai(client: httpx.AsyncClient, status: int, kind: str, code: str | None) -> None:
    text = f"hi [[mock status={status} retry_after=2 retry_after_ms=1500]]"
    r = await client.post(OPENAI, json=openai(text, stream=True))
    assert r.status_code == status
    assert r.headers["retry-after"] == "2"
    assert r.headers["retry-after-ms"] == "1500"
    error = r.json()["error"]
    assert error["type"] == kind and error["code"] == code and error["param"] is None and error["message"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error"), (401, "authentication_error")],
)
async def test_status_anthropic(client: httpx.AsyncClient, status: int, kind: str) -> None:
    r = await client.post(ANTHROPIC, json=anthropic(f"[[mock status={status}]] hi"))
    assert r.status_code == status
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind and body["error"]["message"]
    assert "retry-after" not in r.headers


@pytest.mark.parametrize(
    ("status", "name"),
    [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"), (400, "INVALID_ARGUMENT")],
)
async def test_status_gemini(client: httpx.AsyncClient, status: int, name: str) -> None:
    r = await client.post(GEMINI, json=gemini(f"hi [[mock status={status}]]"))
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == status and error["status"] == name and error["message"]


async def test_timeout_never_answers(client: httpx.AsyncClient) -> None:
    # ASGITransport ignores httpx timeouts, so bound the call from outside.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.post(OPENAI, json=openai("hi [[mock timeout]]")), 0.2)
    assert (await client.post(OPENAI, json=openai("still alive"))).status_code == 200


async def test_cut_after_raises_inside_the_app(client: httpx.AsyncClient) -> None:
    with pytest.raises(StreamCut):
        await client.post(OPENAI, json=openai("hello world [[mock cut_after=1]]", stream=True))


async def test_cut_after_openai(lenient_client: httpx.AsyncClient, sse: SSE) -> None:
    r = await lenient_client.post(OPENAI, json=openai("hello world [[mock cut_after=2]]", stream=True))
    events = [d for _, d in sse(r.text)]
    assert "[DONE]" not in events
    chunks = [orjson.loads(e) for e in events]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "Echo: he", "llo worl"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


async def test_cut_after_anthropic(lenient_client: httpx.AsyncClient, sse: SSE) -> None:
    r = await lenient_client.post(ANTHROPIC, json=anthropic("hello world [[mock cut_after=1]]", stream=True))
    names = [name for name, _ in sse(r.text)]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta"]


async def test_cut_after_gemini(lenient_client: httpx.AsyncClient, sse: SSE) -> None:
    r = await lenient_client.post(GEMINI_STREAM, json=gemini("hello world [[mock cut_after=2]]"))
    chunks = [orjson.loads(d) for _, d in sse(r.text)]
    assert len(chunks) == 2
    assert all("finishReason" not in c["candidates"][0] for c in chunks)


async def test_chunk_delay_and_chunk_chars(client: httpx.AsyncClient, sse: SSE) -> None:
    start = time.perf_counter()
    r = await client.post(
        ANTHROPIC, json=anthropic("abcdef [[mock chunk_chars=4 chunk_delay_ms=10]]", stream=True)
    )
    elapsed = time.perf_counter() - start
    deltas = [orjson.loads(d)["delta"]["text"] for n, d in sse(r.text) if n == "content_block_delta"]
    assert deltas == ["Echo", ": ab", "cdef"]
    assert elapsed >= 0.08  # 10 events, 9 pauses of 10 ms
    assert sse(r.text)[-1][0] == "message_stop"


async def test_reply_b64_split_across_chunks(client: httpx.AsyncClient, sse: SSE) -> None:
    secret = "mail alice@example.com now"
    b64 = base64.b64encode(secret.encode()).decode()
    body = gemini(f"[[mock reply_b64={b64} chunk_chars=12]] ignored")
    r = await client.post(GEMINI_STREAM, json=body)
    parts = [orjson.loads(d)["candidates"][0]["content"]["parts"][0]["text"] for _, d in sse(r.text)]
    assert parts == ["mail alice@e", "xample.com n", "ow"]
    r = await client.post(OPENAI, json=openai(f"x [[mock reply_b64={b64}]]"))
    assert r.json()["choices"][0]["message"]["content"] == secret


async def test_fail_times_per_key(client: httpx.AsyncClient) -> None:
    fail_a = openai("hi [[mock fail_times=2 key=a status=503 retry_after=1]]")
    statuses = [(await client.post(OPENAI, json=fail_a)).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    fail_b = anthropic("hi [[mock fail_times=1 key=b]]")
    statuses = [(await client.post(ANTHROPIC, json=fail_b)).status_code for _ in range(2)]
    assert statuses == [500, 200]


async def test_fail_times_with_cut_after(lenient_client: httpx.AsyncClient) -> None:
    body = openai("hello [[mock fail_times=1 key=c cut_after=1]]", stream=True)
    first = await lenient_client.post(OPENAI, json=body)
    second = await lenient_client.post(OPENAI, json=body)
    assert "[DONE]" not in first.text
    assert second.text.endswith("data: [DONE]\n\n")


async def test_header_directive_wins(client: httpx.AsyncClient) -> None:
    body = openai("hi [[mock status=500]]")
    r = await client.post(OPENAI, json=body, headers={"x-mock-fault": "status=429"})
    assert r.status_code == 429
    r = await client.post(OPENAI, json=openai("hi"), headers={"x-mock-fault": "[[mock status=418]]"})
    assert r.status_code == 418
    r = await client.post(OPENAI, json=body, headers={"x-mock-fault": "latency_ms=0"})
    assert r.status_code == 500  # merged: header keys override, body keys stay


@pytest.mark.parametrize(
    "directive", ["bogus=1", "status=abc", "status=200", "chunk_chars=0", "reply_b64=***"]
)
async def test_bad_directive_is_400(client: httpx.AsyncClient, directive: str) -> None:
    r = await client.post(ANTHROPIC, json=anthropic(f"hi [[mock {directive}]]"))
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
