"""Cohere v2 Chat wire format of the mock provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

URL = "/v2/chat"
SSE = Callable[[str], list[tuple[str | None, str]]]


def _body(text: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {"model": "command-a-03-2025", "messages": [{"role": "user", "content": text}], **extra}


async def test_chat_response(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    r = await client.post(URL, json=_body(messages=messages), headers={"authorization": "Bearer co-key"})
    assert r.status_code == 200
    data = r.json()
    assert isinstance(data["id"], str) and data["id"]
    assert data["finish_reason"] == "COMPLETE"
    assert data["message"] == {"role": "assistant", "content": [{"type": "text", "text": "Echo: hi"}]}
    counts = {"input_tokens": 2 + 1, "output_tokens": 2}  # system "terse" + "hi"; "Echo: hi"
    assert data["usage"] == {"billed_units": counts, "tokens": counts}


async def test_stream_event_sequence(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post(URL, json=_body("hello world", stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names == [
        "message-start",
        "content-start",
        "content-delta",
        "content-delta",
        "content-delta",
        "content-end",
        "message-end",
    ]
    payloads = [orjson.loads(data) for _, data in events]
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    assert payloads[0]["delta"]["message"]["role"] == "assistant"
    assert payloads[1]["delta"]["message"]["content"] == {"type": "text", "text": ""}
    text = "".join(p["delta"]["message"]["content"]["text"] for p in payloads[2:5])
    assert text == "Echo: hello world"
    end = payloads[-1]["delta"]
    assert end["finish_reason"] == "COMPLETE"
    assert end["usage"]["tokens"] == {"input_tokens": 3, "output_tokens": 5}


async def test_tool_turns_are_accepted(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    r = await client.post(URL, json=_body(messages=messages))
    assert r.status_code == 200
    assert r.json()["message"]["content"][0]["text"] == "Echo: thanks"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "chatbot", "content": "x"}]}, "role"),
    ],
)
async def test_invalid_request_is_400_in_cohere_shape(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    r = await client.post(URL, json=body)
    assert r.status_code == 400
    data = r.json()
    assert set(data) == {"id", "message"} and message in data["message"]


async def test_malformed_json_is_400_in_cohere_shape(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b"[1,", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "message" in r.json()


@pytest.mark.parametrize("status", [429, 500, 401])
async def test_status_fault(client: httpx.AsyncClient, status: int) -> None:
    r = await client.post(URL, json=_body(f"[[mock status={status} retry_after=3]] hi", stream=True))
    assert r.status_code == status
    assert r.headers["retry-after"] == "3"
    assert r.json()["message"] == f"mock fault: HTTP {status}"


async def test_cut_after(lenient_client: httpx.AsyncClient, sse: SSE) -> None:
    r = await lenient_client.post(URL, json=_body("hello world [[mock cut_after=1]]", stream=True))
    names = [name for name, _ in sse(r.text)]
    assert names == ["message-start", "content-start", "content-delta"]


async def test_directive_header_and_recorder(client: httpx.AsyncClient) -> None:
    reply = "aGk="  # "hi"
    r = await client.post(
        URL, json=_body("question"), headers={"x-mock-fault": f"reply_b64={reply}", "authorization": "Bearer k"}
    )
    assert r.json()["message"]["content"] == [{"type": "text", "text": "hi"}]
    records = (await client.get("/_mock/requests")).json()
    assert records[-1]["path"] == URL
    assert records[-1]["headers"]["authorization"] == "<set>"
    assert records[-1]["body"]["model"] == "command-a-03-2025"


async def test_scripted_fault_applies_by_model(client: httpx.AsyncClient) -> None:
    added = await client.post("/_mock/faults", json={"fault": "status=503", "model": "command-a-03-2025", "times": 1})
    assert added.status_code == 201
    assert (await client.post(URL, json=_body())).status_code == 503
    assert (await client.post(URL, json=_body())).status_code == 200
