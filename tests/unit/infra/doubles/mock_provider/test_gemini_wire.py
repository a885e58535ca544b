"""Google Gemini generateContent wire format of the mock provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

BASE = "/v1beta/models/gemini-2.0-flash"
SSE = Callable[[str], list[tuple[str | None, str]]]


def _body(text: str = "hello world") -> dict[str, Any]:
    return {
        "systemInstruction": {"parts": [{"text": "be nice"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "earlier"}]},
            {"role": "model", "parts": [{"text": "sure"}]},
            {"role": "user", "parts": [{"text": text}]},
        ],
    }


async def test_generate_content(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}:generateContent", json=_body())
    assert r.status_code == 200
    data = r.json()
    candidate = data["candidates"][0]
    assert candidate["content"] == {"role": "model", "parts": [{"text": "Echo: hello world"}]}
    assert candidate["finishReason"] == "STOP"
    assert candidate["index"] == 0
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == 2 + 2 + 1 + 3
    assert usage["candidatesTokenCount"] == 5
    assert usage["totalTokenCount"] == 13
    assert data["modelVersion"] == "gemini-2.0-flash"


async def test_stream_sse(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post(f"{BASE}:streamGenerateContent?alt=sse", json=_body())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in r.text
    chunks = [orjson.loads(data) for _, data in sse(r.text)]
    assert len(chunks) == 3
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "Echo: hello world"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 13


async def test_stream_without_alt_sse_is_a_json_array(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}:streamGenerateContent", json=_body("hi"))
    assert r.headers["content-type"] == "application/json"
    chunks = r.json()
    assert isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_role_defaults_to_user(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}:generateContent", json={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: x"


async def test_errors_in_gemini_shape(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}:generateContent", content=b"nope")
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert r.json()["error"]["code"] == 400
    r = await client.post(f"{BASE}:generateContent", json={"contents": []})
    assert r.status_code == 400
    assert (await client.post("/v1beta/models/x:countTokens", json={})).status_code == 404
