"""Anthropic request → canonical OpenAI body, and every malformed body → a 400 with a param."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingress.anthropic_surface import parse_count_tokens_request, parse_messages_request
from schemas.errors import InvalidRequest
from schemas.openai import ChatCompletionRequest

PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **fields}


def canonical(**fields: Any) -> dict[str, Any]:
    result, _ = parse_messages_request(orjson.dumps(body(**fields)))
    ChatCompletionRequest.model_validate(result)  # always a valid canonical request
    return result


def refused(data: Any) -> InvalidRequest:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    with pytest.raises(InvalidRequest) as raised:
        parse_messages_request(raw)
    assert raised.value.status_code == 400
    return raised.value


def test_minimal() -> None:
    assert canonical() == {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


def test_sampling_stop_user_and_ignored_fields() -> None:
    out = canonical(
        temperature=0.5, top_p=0.9, top_k=5, stop_sequences=["END"], metadata={"user_id": "u1"}, thinking={"x": 1}
    )
    assert out["temperature"] == 0.5 and out["top_p"] == 0.9
    assert out["stop"] == ["END"] and out["user"] == "u1"
    assert "top_k" not in out and "thinking" not in out and "metadata" not in out


def test_stream_asks_for_usage() -> None:
    out = canonical(stream=True)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "stream" not in canonical(stream=False)


def test_system_string_and_blocks() -> None:
    assert canonical(system="be brief")["messages"][0] == {"role": "system", "content": "be brief"}
    cached = {"type": "ephemeral"}
    system = [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": cached}]
    assert canonical(system=system)["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": cached}],
    }
    assert canonical(system="")["messages"][0]["role"] == "user"


def test_user_blocks_become_parts() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image", "source": PNG},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "n"}},
    ]
    [message] = canonical(messages=[{"role": "user", "content": content}])["messages"]
    assert message["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "text", "text": "Notes\n\nn"},
    ]


def test_tool_round_trip() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [{"type": "text", "text": "no"}, {"type": "image", "source": PNG}],
                },
                {"type": "text", "text": "and?"},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]},
    ]
    out = canonical(messages=messages)["messages"]
    assert out[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get", "arguments": "{}"}},
        ],
    }
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "and?"},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
    ]


def test_assistant_tool_only_has_null_content() -> None:
    use = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    out = canonical(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": [use]}])
    assert out["messages"][1]["content"] is None
    prefill = canonical(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "Sure"}])
    assert prefill["messages"][1] == {"role": "assistant", "content": "Sure"}


TOOL = {"name": "get", "description": "Get it", "input_schema": {"type": "object", "properties": {}}}


def test_tools() -> None:
    out = canonical(tools=[TOOL, {"name": "bare", "input_schema": {"type": "object"}, "type": "custom"}])
    assert out["tools"] == [
        {"type": "function", "function": {"name": "get", "description": "Get it", "parameters": TOOL["input_schema"]}},
        {"type": "function", "function": {"name": "bare", "parameters": {"type": "object"}}},
    ]
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "get"}, {"tool_choice": {"type": "function", "function": {"name": "get"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
        ({"type": "none", "disable_parallel_tool_use": True}, {"tool_choice": "none"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    out = canonical(tools=[TOOL], tool_choice=choice)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in canonical(tool_choice={"type": "any"})


def test_returns_validated_view() -> None:
    _, request = parse_messages_request(orjson.dumps(body(stream=True)))
    assert request.model == "claude-x" and request.stream and request.max_tokens == 64


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"42"])
def test_bad_json(raw: bytes) -> None:
    assert refused(raw).code == "invalid_json"


def _user(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"model": 5}, "model", "invalid_type"),
        ({"max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"messages": []}, "messages", "empty_array"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role", "invalid_value"),
        ({"messages": [{"role": "user"}]}, "messages.0.content", "missing_required_parameter"),
        ({"messages": _user({"type": "text"})}, "messages.0.content.0.text", "missing_required_parameter"),
        ({"messages": _user({"type": "video"})}, "messages.0.content.0", "invalid_value"),
        ({"messages": _user("text")}, "messages.0.content.0", "invalid_value"),
        (
            {"messages": _user({"type": "image", "source": {**PNG, "media_type": "image/bmp"}})},
            "messages.0.content.0.source.media_type",
            "invalid_value",
        ),
        (
            {"messages": _user({"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}})},
            "messages.0.content.0.source",
            "invalid_value",
        ),
        (
            {"messages": _user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use"}]})},
            "messages.0.content.0.content.0",
            "invalid_value",
        ),
        (
            {"messages": _user({"type": "tool_use", "id": "t", "name": "f", "input": {}})},
            "messages.0.content.0.type",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "image", "source": PNG}]}]},
            "messages.0.content.0.type",
            "invalid_value",
        ),
        ({"system": [{"type": "text"}]}, "system.0.text", "missing_required_parameter"),
        ({"system": 5}, "system", "invalid_type"),
        ({"tools": [{"name": "f"}]}, "tools.0", "invalid_value"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0", "invalid_value"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice", "invalid_value"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type", "invalid_value"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name", "invalid_value"),
        ({"temperature": 1.5}, "temperature", "invalid_value"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences", "invalid_value"),
        ({"metadata": {"user_id": 7}}, "metadata.user_id", "invalid_type"),
    ],
)
def test_refusals(fields: dict[str, Any], param: str, code: str) -> None:
    data = body(**fields)
    data = {k: v for k, v in data.items() if v is not None}
    err = refused(data)
    assert (err.param, err.code) == (param, code), err.message
    assert param in err.message
    assert "more problem" not in err.message  # sibling union members are not reported as extra problems


def test_missing_fields_named() -> None:
    err = refused({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert err.message == "Missing required parameter: 'model'."
    assert refused({"model": "m", "messages": [{"role": "user", "content": "x"}]}).param == "max_tokens"


def test_unknown_block_names_supported_types() -> None:
    err = refused(body(messages=_user({"type": "video"})))
    assert "text, image, document, tool_use, tool_result" in err.message


def test_count_tokens_request_needs_no_max_tokens() -> None:
    data, request = parse_count_tokens_request(
        orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    )
    assert request.model == "m" and data["messages"] == [{"role": "user", "content": "x"}]
    with pytest.raises(InvalidRequest):
        parse_count_tokens_request(b'{"model": "m", "messages": []}')
