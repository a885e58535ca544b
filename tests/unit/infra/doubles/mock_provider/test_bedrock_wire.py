"""Amazon Bedrock Converse wire format of the mock provider (JSON answers, binary event streams, errors)."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any, cast

import httpx
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from infra.doubles.mock_provider.server import MockProvider, find_route

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
URL = f"/model/{MODEL}/converse"
STREAM_URL = f"/model/{MODEL}/converse-stream"
Frame = tuple[dict[str, Any], dict[str, Any]]


def _body(text: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], **extra}


def _frames(raw: bytes) -> list[Frame]:
    """(headers, JSON payload) of each event-stream frame; botocore checks lengths and both CRCs."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(cast(dict[str, Any], message.headers), orjson.loads(message.payload)) for message in buffer]


def _names(frames: list[Frame]) -> list[str]:
    return [headers[":event-type"] for headers, _ in frames]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_routes() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
    for path, model, stream in (
        (URL, MODEL, False),
        (STREAM_URL, MODEL, True),
        (f"/model/{arn}/converse", arn, False),  # ASGI paths arrive decoded
        (f"/model/{urllib.parse.quote(arn, safe='')}/converse-stream", arn, True),
    ):
        route = find_route("POST", path, b"")
        assert route is not None and route.wire.name == "bedrock"
        assert (route.model, route.stream) == (model, stream)
    assert find_route("POST", "/model//converse", b"") is None
    assert find_route("POST", f"/model/{MODEL}/invoke", b"") is None
    assert find_route("GET", URL, b"") is None


async def test_converse_response(client: httpx.AsyncClient) -> None:
    body = _body(
        "hi",
        system=[{"text": "terse"}],
        inferenceConfig={"maxTokens": 64, "temperature": 0.2},
        toolConfig={"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]},
    )
    r = await client.post(URL, json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "output": {"message": {"role": "assistant", "content": [{"text": "Echo: hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},  # "terse" + "hi"; "Echo: hi"
        "metrics": {"latencyMs": 1},
    }


async def test_tool_turns_and_images_are_accepted(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "user", "content": [{"text": "look"}, {"image": {"format": "png", "source": {"bytes": "iVBO"}}}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "result"}]}}, {"text": "and now"}],
        },
    ]
    r = await client.post(URL, json={"messages": messages})
    assert r.status_code == 200
    data = r.json()
    assert data["output"]["message"]["content"] == [{"text": "Echo: and now"}]
    assert data["usage"]["inputTokens"] == 1 + 0 + 2 + 2  # "look", "", "result", "and now"


async def test_stream_frames(client: httpx.AsyncClient) -> None:
    r = await client.post(STREAM_URL, json=_body("hello world"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = _frames(r.content)
    names = _names(frames)
    assert names[0] == "messageStart" and names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    for headers, _ in frames:
        assert headers[":message-type"] == "event" and headers[":content-type"] == "application/json"
    assert frames[0][1] == {"role": "assistant"}
    deltas = [payload for headers, payload in frames if headers[":event-type"] == "contentBlockDelta"]
    assert [d["delta"]["text"] for d in deltas] == ["Echo: he", "llo worl", "d"]
    assert all(d["contentBlockIndex"] == 0 for d in deltas)
    assert frames[-2][1] == {"stopReason": "end_turn"}
    assert frames[-1][1] == {
        "usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8},
        "metrics": {"latencyMs": 1},
    }


async def test_stream_chunk_chars_and_delay(client: httpx.AsyncClient) -> None:
    r = await client.post(STREAM_URL, json=_body("abc [[mock chunk_chars=4 chunk_delay_ms=1]]"))
    frames = _frames(r.content)
    assert [p["delta"]["text"] for h, p in frames if h[":event-type"] == "contentBlockDelta"] == ["Echo", ": ab", "c"]


async def test_tool_call(client: httpx.AsyncClient) -> None:
    args = _b64('{"city": "Paris"}')
    directive = f"[[mock tool_call=get_weather args_b64={args}]]"
    r = await client.post(URL, json=_body(f"weather? {directive}"))
    assert r.status_code == 200
    data = r.json()
    assert data["stopReason"] == "tool_use"
    (block,) = data["output"]["message"]["content"]
    use = block["toolUse"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
    assert use["toolUseId"].startswith("tooluse_")
    assert data["usage"]["outputTokens"] == 4  # '{"city":"Paris"}' is 16 characters


async def test_tool_call_stream(client: httpx.AsyncClient) -> None:
    args = _b64('{"city":"Paris"}')
    directive = f"[[mock tool_call=get_weather args_b64={args} chunk_chars=6]]"
    r = await client.post(STREAM_URL, json=_body(directive))
    frames = _frames(r.content)
    assert _names(frames) == [
        "messageStart",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    start = frames[1][1]
    assert start["contentBlockIndex"] == 0 and start["start"]["toolUse"]["name"] == "get_weather"
    fragments = [p["delta"]["toolUse"]["input"] for h, p in frames if h[":event-type"] == "contentBlockDelta"]
    assert "".join(fragments) == '{"city":"Paris"}'
    assert frames[-2][1] == {"stopReason": "tool_use"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "ValidationException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
        (404, "ResourceNotFoundException"),
        (418, "ValidationException"),
        (502, "InternalServerException"),
    ],
)
async def test_status_fault(client: httpx.AsyncClient, status: int, kind: str) -> None:
    r = await client.post(URL, json=_body(f"x [[mock status={status} retry_after=3]]"))
    assert r.status_code == status
    assert r.headers["x-amzn-errortype"] == kind
    assert r.headers["retry-after"] == "3"
    assert r.json() == {"message": f"mock fault: HTTP {status}", "__type": kind}


async def test_fault_header_on_stream(client: httpx.AsyncClient) -> None:
    r = await client.post(STREAM_URL, json=_body(), headers={"x-mock-fault": "status=429"})
    assert r.status_code == 429 and r.headers["x-amzn-errortype"] == "ThrottlingException"


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": [{"text": "x"}]}]},
        {"messages": [{"role": "user", "content": "plain string"}]},
        {"messages": [{"role": "user", "content": [{"text": 1}]}]},
        _body(inferenceConfig={"maxTokens": 0}),
        _body(system="not a list"),
        _body(toolConfig={"tools": "nope"}),
        [1, 2],
    ],
)
async def test_invalid_request_is_validation_exception(client: httpx.AsyncClient, body: Any) -> None:
    r = await client.post(URL, json=body)
    assert r.status_code == 400
    assert r.headers["x-amzn-errortype"] == "ValidationException"
    assert r.json()["__type"] == "ValidationException" and r.json()["message"]


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["__type"] == "ValidationException"


async def test_cut_after(lenient_client: httpx.AsyncClient) -> None:
    r = await lenient_client.post(STREAM_URL, json=_body("hello world [[mock cut_after=2]]"))
    frames = _frames(r.content)
    assert _names(frames) == ["messageStart", "contentBlockDelta", "contentBlockDelta"]


async def test_cut_after_tool_call(lenient_client: httpx.AsyncClient) -> None:
    r = await lenient_client.post(STREAM_URL, json=_body("[[mock tool_call=f cut_after=1]]"))
    assert _names(_frames(r.content)) == ["messageStart", "contentBlockStart", "contentBlockDelta"]


async def test_directives_stripped_and_recorded(client: httpx.AsyncClient, mock_app: MockProvider) -> None:
    r = await client.post(URL, json=_body("hi [[mock latency_ms=1]]"), headers={"authorization": "Bearer k"})
    assert r.json()["output"]["message"]["content"] == [{"text": "Echo: hi"}]
    (record,) = mock_app.recorder.snapshot()
    assert record["path"] == URL and record["headers"]["authorization"] == "<set>"


async def test_scripted_fault_applies_by_model(client: httpx.AsyncClient) -> None:
    r = await client.post("/_mock/faults", json={"fault": "status=503", "model": MODEL, "times": 1})
    assert r.status_code == 201
    first = await client.post(URL, json=_body())
    other = await client.post("/model/other-model/converse", json=_body())
    second = await client.post(URL, json=_body())
    assert first.status_code == 503 and first.headers["x-amzn-errortype"] == "ServiceUnavailableException"
    assert other.status_code == 200 and second.status_code == 200
