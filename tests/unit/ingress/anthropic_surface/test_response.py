"""Canonical chat.completion → Anthropic message, checked against the SDK's own model."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from ingress.anthropic_surface import message_id, to_messages_response


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1,
        "model": "provider-model",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        **extra,
    }


def test_text() -> None:
    out = to_messages_response(completion({"content": "Hello"}), model="claude-x")
    assert out == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }
    message = anthropic.types.Message.model_validate(out)
    assert message.content[0].type == "text" and message.content[0].text == "Hello"
    assert message.usage.input_tokens == 12


def test_tool_calls() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "noargs", "arguments": ""}},
        {"id": "call_3", "type": "function", "function": {"name": "broken", "arguments": "{oops"}},
    ]
    out = to_messages_response(completion({"content": "Let me check.", "tool_calls": calls}, "tool_calls"), model="m")
    assert out["stop_reason"] == "tool_use"
    assert out["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "noargs", "input": {}},
        {"type": "tool_use", "id": "call_3", "name": "broken", "input": {"_raw_arguments": "{oops"}},
    ]
    message = anthropic.types.Message.model_validate(out)
    block = message.content[1]
    assert isinstance(block, anthropic.types.ToolUseBlock) and block.input == {"city": "Paris"}


def test_tool_calls_with_stop_finish_still_tool_use() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    out = to_messages_response(completion({"content": None, "tool_calls": [call]}, "stop"), model="m")
    assert out["stop_reason"] == "tool_use" and [b["type"] for b in out["content"]] == ["tool_use"]


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("weird", "end_turn"),
    ],
)
def test_stop_reason(finish: str | None, reason: str) -> None:
    out = to_messages_response(completion({"content": "x"}, finish), model="m")
    assert out["stop_reason"] == reason
    assert anthropic.types.Message.model_validate(out).stop_reason == reason


def test_empty_and_refusal_and_parts() -> None:
    assert to_messages_response(completion({"content": None}), model="m")["content"] == []
    refusal = to_messages_response(completion({"content": None, "refusal": "No."}, "content_filter"), model="m")
    assert refusal["content"] == [{"type": "text", "text": "No."}]
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert to_messages_response(completion({"content": parts}), model="m")["content"][0]["text"] == "ab"


def test_usage_cached_and_missing() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 80}}
    out = to_messages_response(completion({"content": "x"}, usage=usage), model="m")
    assert out["usage"] == {"input_tokens": 20, "output_tokens": 3, "cache_read_input_tokens": 80}
    bare = completion({"content": "x"})
    del bare["usage"]
    assert to_messages_response(bare, model="m")["usage"] == {"input_tokens": 0, "output_tokens": 0}
    anthropic.types.Message.model_validate(out)


def test_message_id() -> None:
    assert message_id("chatcmpl-123") == "msg_123"
    assert message_id("msg_01ABC") == "msg_01ABC"
    assert message_id("resp-x") == "msg_resp-x"
    assert message_id(None).startswith("msg_") and len(message_id(None)) > 10


def test_garbage_completion_still_valid() -> None:
    out = to_messages_response({"choices": []}, model="m")
    assert out["content"] == [] and out["stop_reason"] == "end_turn" and out["id"].startswith("msg_")
    anthropic.types.Message.model_validate(out)
