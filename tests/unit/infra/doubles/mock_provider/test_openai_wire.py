"""OpenAI Chat Completions wire format of the mock provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

URL = "/v1/chat/completions"
SSE = Callable[[str], list[tuple[str | None, str]]]


def _body(text: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def test_completion_echoes_last_user_message_with_usage(client: httpx.AsyncClient) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "world"}],
            },
        ],
    }
    r = await client.post(URL, json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "gpt-4o-mini"
    choice = data["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Echo: hello world",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    # ceil(8/4) + ceil(5/4) + ceil(2/4) + ceil(11/4) = 2 + 2 + 1 + 3
    assert data["usage"]["prompt_tokens"] == 8
    assert data["usage"]["completion_tokens"] == 5  # ceil(len("Echo: hello world") / 4)
    assert data["usage"]["total_tokens"] == 13


async def test_n_choices(client: httpx.AsyncClient) -> None:
    data = (await client.post(URL, json=_body("hi", n=3))).json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in data["choices"]} == {"Echo: hi"}
    assert data["usage"]["completion_tokens"] == 3 * 2


async def test_stream_sequence_with_usage(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post(URL, json=_body("hello world", stream=True, stream_options={"include_usage": True}))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    events = [data for _, data in sse(r.text)]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert content == ["Echo: he", "llo worl", "d"]  # default chunk_chars = 8
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_usage(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post(URL, json=_body("hi", stream=True))
    chunks = [orjson.loads(d) for _, d in sse(r.text)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


async def test_stream_n_choices(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post(URL, json=_body("hi", stream=True, n=2))
    chunks = [orjson.loads(d) for _, d in sse(r.text)[:-1]]
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert "".join(ch["delta"].get("content", "") for ch in mine) == "Echo: hi"
        assert mine[-1]["finish_reason"] == "stop"


async def test_models_list(client: httpx.AsyncClient) -> None:
    data = (await client.get("/v1/models")).json()
    assert data["object"] == "list"
    assert all(m["object"] == "model" and m["id"] for m in data["data"])


async def test_malformed_json_is_400_in_openai_shape(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


async def test_missing_messages_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json={"model": "gpt-4o-mini"})
    assert r.status_code == 400
    assert "messages" in r.json()["error"]["message"]


async def test_unknown_route_is_404_in_openai_shape(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/nope", json={})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "unknown_url"
    assert (await client.get("/v1/chat/completions")).status_code == 404
