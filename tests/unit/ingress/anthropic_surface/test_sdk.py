"""The official ``anthropic`` SDK, pointed at a mock transport serving our translations: it must send a
body we accept and assemble our responses, streams and errors the way it does Anthropic's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import orjson
import pytest

from ingress.anthropic_surface import (
    MessagesStreamEncoder,
    encode_events,
    error_body,
    error_event,
    parse_messages_request,
    ping_event,
    to_messages_response,
)
from schemas.errors import ErrorInfo, RateLimited, StreamInterrupted

try:  # anthropic ≥ 2.x speaks httpx2 and refuses httpx objects; older releases use httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

Handler = Callable[[dict[str, Any]], httpx.Response]
TOOLS: list[Any] = [{"name": "get", "description": "Get weather", "input_schema": {"type": "object"}}]


def client(handler: Handler, seen: list[dict[str, Any]]) -> anthropic.Anthropic:
    def respond(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/messages"
        canonical, _ = parse_messages_request(request.content)  # what the SDK sends, we accept
        seen.append(canonical)
        return handler(canonical)

    http = httpx.Client(transport=httpx.MockTransport(respond))
    return anthropic.Anthropic(base_url="http://gateway.test", api_key="x", http_client=http, max_retries=0)


@pytest.fixture
def seen() -> Iterator[list[dict[str, Any]]]:
    yield []


def sse(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def chunks() -> list[dict[str, Any]]:
    def one(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def tool(index: int, arguments: str, **first: str) -> dict[str, Any]:
        head = {"id": first["id"], "type": "function"} if first else {}
        function = {"name": first["name"], "arguments": arguments} if first else {"arguments": arguments}
        return one({"tool_calls": [{"index": index, **head, "function": function}]})

    return [
        one({"role": "assistant", "content": ""}),
        one({"content": "Let me "}),
        one({"content": "check."}),
        tool(0, "", id="call_1", name="get"),
        tool(0, '{"city": "Pa'),
        tool(0, 'ris", "days": 2}'),
        tool(1, "", id="call_2", name="get"),
        one({}, "tool_calls"),
        {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 12}},
    ]


def stream_body() -> bytes:
    encoder = MessagesStreamEncoder("claude-x", "msg_42")
    events = encoder.start()
    for item in chunks():
        events += encoder.feed(item)
    body = encode_events(events[:1]) + ping_event() + encode_events(events[1:])
    return body + encode_events(encoder.finish())


def test_sdk_request_round_trip_and_create(seen: list[dict[str, Any]]) -> None:
    completion = {
        "id": "chatcmpl-9",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sunny.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{}"}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 4},
    }
    sdk = client(lambda body: httpx.Response(200, json=to_messages_response(completion, model=body["model"])), seen)
    message = sdk.messages.create(
        model="claude-x",
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        metadata={"user_id": "u"},
    )
    assert seen[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
    ]
    assert seen[0]["tool_choice"] == "auto" and seen[0]["parallel_tool_calls"] is False
    assert (seen[0]["stop"], seen[0]["user"], seen[0]["max_tokens"]) == (["END"], "u", 50)
    assert message.id == "msg_9" and message.model == "claude-x" and message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == "Sunny."
    assert message.content[1].type == "tool_use" and message.content[1].input == {}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 4)


def test_sdk_messages_stream_assembles_final_message(seen: list[dict[str, Any]]) -> None:
    sdk = client(lambda body: sse(stream_body()), seen)
    with sdk.messages.stream(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert seen[0]["stream"] is True and seen[0]["stream_options"] == {"include_usage": True}
    assert text == "Let me check."
    assert final.id == "msg_42" and final.stop_reason == "tool_use" and final.stop_sequence is None
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    first, second = final.content[1], final.content[2]
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.id, first.name, first.input) == ("call_1", "get", {"city": "Paris", "days": 2})
    assert (second.id, second.input) == ("call_2", {})
    assert (final.usage.input_tokens, final.usage.output_tokens) == (31, 12)


def test_sdk_create_stream_raw_events(seen: list[dict[str, Any]]) -> None:
    sdk = client(lambda body: sse(stream_body()), seen)
    kinds = [
        event.type
        for event in sdk.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 3


def test_sdk_in_band_error(seen: list[dict[str, Any]]) -> None:
    encoder = MessagesStreamEncoder("claude-x", "msg_1")
    events = encoder.start() + encoder.feed(chunks()[1])
    body = encode_events(events) + error_event(StreamInterrupted("provider went away").info())
    sdk = client(lambda _: sse(body), seen)
    with pytest.raises(anthropic.APIStatusError) as raised:
        with sdk.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as stream:
            stream.until_done()
    assert raised.value.body == {"type": "error", "error": {"type": "api_error", "message": "provider went away"}}


@pytest.mark.parametrize(
    ("info", "exception"),
    [
        (RateLimited("slow down").info(), anthropic.RateLimitError),
        (ErrorInfo(status_code=400, type="invalid_request_error", message="bad"), anthropic.BadRequestError),
        (ErrorInfo(status_code=401, type="authentication_error", message="key"), anthropic.AuthenticationError),
        (ErrorInfo(status_code=404, type="invalid_request_error", message="nf"), anthropic.NotFoundError),
        (ErrorInfo(status_code=529, type="api_error", message="busy"), anthropic.OverloadedError),
    ],
)
def test_sdk_error_responses(info: ErrorInfo, exception: type[anthropic.APIStatusError], seen: list[Any]) -> None:
    sdk = client(lambda _: httpx.Response(info.status_code, content=orjson.dumps(error_body(info))), seen)
    with pytest.raises(exception) as raised:
        sdk.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == info.status_code
    assert isinstance(raised.value.body, dict) and raised.value.body["error"]["message"] == info.message


def test_sdk_tool_history_round_trip(seen: list[dict[str, Any]]) -> None:
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "18C."}, "finish_reason": "stop"}]}
    sdk = client(lambda body: httpx.Response(200, json=to_messages_response(reply, model="claude-x")), seen)
    message = sdk.messages.create(
        model="claude-x",
        max_tokens=50,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"c": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
        ],
    )
    assert seen[0]["messages"][0]["content"] == [
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
    ]
    assert seen[0]["messages"][2]["tool_calls"][0]["function"] == {"name": "get", "arguments": '{"c":1}'}
    assert seen[0]["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    assert message.content[0].text == "18C."
