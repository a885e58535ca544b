"""Anthropic Messages wire format of the mock provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

URL = "/v1/messages"
SSE = Callable[[str], list[tuple[str | None, str]]]


def _body(text: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def test_message_object(client: httpx.AsyncClient) -> None:
    body = _body(system="terse", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    r = await client.post(URL, json=body)
    assert r.status_code == 200
    data = r.json()
    assert data["id"].startswith("msg_")
    assert data["type"] == "message"
    assert data["role"] == "assistant"
    assert data["model"] == "claude-sonnet-4-5"
    assert data["content"] == [{"type": "text", "text": "Echo: hi"}]
    assert data["stop_reason"] == "end_turn"
    assert data["stop_sequence"] is None
    assert data["usage"]["input_tokens"] == 2 + 1  # system "terse" + "hi"
    assert data["usage"]["output_tokens"] == 2


async def test_stream_event_sequence(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post(URL, json=_body("hello world", stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    payloads = [orjson.loads(data) for _, data in events]
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 3
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    deltas = [p["delta"] for p in payloads[3:6]]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == "Echo: hello world"
    assert payloads[7]["delta"]["stop_reason"] == "end_turn"
    assert payloads[7]["usage"] == {"output_tokens": 5}


async def test_max_tokens_is_required(client: httpx.AsyncClient) -> None:
    body = _body()
    del body["max_tokens"]
    r = await client.post(URL, json=body)
    assert r.status_code == 400
    assert r.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }


async def test_malformed_json_is_400_in_anthropic_shape(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b"[1,", headers={"content-type": "application/json"})
    assert r.status_code == 400
    data = r.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"
