"""The `tool_call=NAME args_b64=B` directive: one tool call in each provider's wire format."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from infra.doubles.mock_provider.directives import DirectiveError, ToolCall, parse_fault

SSE = Callable[[str], list[tuple[str | None, str]]]
ARGS = {"city": "Paris", "units": "celsius", "days": [1, 2]}
ARGUMENTS = orjson.dumps(ARGS).decode()  # {"city":"Paris","units":"celsius","days":[1,2]}: 46 chars
B64 = base64.b64encode(orjson.dumps(ARGS, option=orjson.OPT_INDENT_2)).decode()
DIRECTIVE = f"[[mock tool_call=get_weather args_b64={B64}]]"
COMPLETION_TOKENS = (len(ARGUMENTS) + 3) // 4
GEMINI = "/v1beta/models/gemini-2.0-flash"


def _openai(stream: bool = False, text: str = f"weather? {DIRECTIVE}", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream, **extra}


def _anthropic(stream: bool = False) -> dict[str, Any]:
    return {**_openai(stream), "model": "claude-sonnet-4-5", "max_tokens": 100}


def _gemini() -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": f"weather? {DIRECTIVE}"}]}]}


def _cohere(stream: bool = False) -> dict[str, Any]:
    return {**_openai(stream), "model": "command-a-03-2025"}


# Directive parsing


def test_directive_parses_and_normalises_arguments() -> None:
    fault = parse_fault(f"tool_call=get_weather args_b64={B64}")
    assert fault.tool_call == ToolCall("get_weather", ARGUMENTS)
    assert fault.tool_call.args() == ARGS
    assert parse_fault("tool_call=ping").tool_call == ToolCall("ping", "{}")
    assert parse_fault("status=500").tool_call is None


@pytest.mark.parametrize(
    "spec",
    [
        "tool_call=",
        "tool_call=bad.name",
        f"args_b64={B64}",
        "tool_call=f args_b64=!!!",
        f"tool_call=f args_b64={base64.b64encode(b'[1, 2]').decode()}",
        f"tool_call=f args_b64={base64.b64encode(b'not json').decode()}",
    ],
)
def test_invalid_directives(spec: str) -> None:
    with pytest.raises(DirectiveError):
        parse_fault(spec)


async def test_invalid_directive_is_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=_openai(text="[[mock args_b64=e30]]"))
    assert r.status_code == 400
    assert "args_b64" in r.json()["error"]["message"]


# OpenAI


async def test_openai_tool_call(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=_openai(n=2))
    assert r.status_code == 200
    data = r.json()
    for choice in data["choices"]:
        assert choice["finish_reason"] == "tool_calls"
        message = choice["message"]
        assert message["content"] is None
        [call] = message["tool_calls"]
        assert call["id"].startswith("call_")
        assert call["type"] == "function"
        assert call["function"] == {"name": "get_weather", "arguments": ARGUMENTS}
    assert data["usage"]["completion_tokens"] == 2 * COMPLETION_TOKENS


async def test_openai_tool_call_from_header(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=_openai(text="hi"), headers={"x-mock-fault": "tool_call=lookup"})
    [call] = r.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "lookup", "arguments": "{}"}
    assert r.json()["usage"]["completion_tokens"] == 1


async def test_openai_stream(client: httpx.AsyncClient, sse: SSE) -> None:
    body = _openai(stream=True, stream_options={"include_usage": True})
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    events = [data for _, data in sse(r.text)]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(data) for data in events[:-1]]
    usage_chunk = chunks.pop()
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == COMPLETION_TOKENS
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert "tool_calls" not in deltas[0]
    [start] = deltas[1]["tool_calls"]
    assert start["index"] == 0
    assert start["id"].startswith("call_")
    assert start["type"] == "function"
    assert start["function"] == {"name": "get_weather", "arguments": ""}
    fragments = deltas[2:-1]
    assert len(fragments) == (len(ARGUMENTS) + 7) // 8
    assert all(d["tool_calls"][0]["index"] == 0 and "id" not in d["tool_calls"][0] for d in fragments)
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in fragments) == ARGUMENTS
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}


async def test_openai_stream_cut_after_counts_argument_fragments(lenient_client: httpx.AsyncClient, sse: SSE) -> None:
    r = await lenient_client.post(
        "/v1/chat/completions", json=_openai(stream=True, text=f"{DIRECTIVE}[[mock cut_after=2]]")
    )
    chunks = [orjson.loads(data) for _, data in sse(r.text)]
    assert len(chunks) == 2 + 2  # role, tool call start, two fragments; no finish, no [DONE]
    assert "[DONE]" not in r.text


# Anthropic


async def test_anthropic_tool_use(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/messages", json=_anthropic())
    assert r.status_code == 200
    data = r.json()
    [block] = data["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert block["name"] == "get_weather"
    assert block["input"] == ARGS
    assert data["stop_reason"] == "tool_use"
    assert data["usage"]["output_tokens"] == COMPLETION_TOKENS


async def test_anthropic_stream(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post("/v1/messages", json=_anthropic(stream=True))
    events = sse(r.text)
    names = [name for name, _ in events]
    payloads = [orjson.loads(data) for _, data in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    block = payloads[1]["content_block"]
    assert payloads[1]["index"] == 0
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["name"] == "get_weather" and block["input"] == {}
    deltas = [p["delta"] for p in payloads[3:-3]]
    assert all(d["type"] == "input_json_delta" for d in deltas)
    assert "".join(d["partial_json"] for d in deltas) == ARGUMENTS
    assert orjson.loads("".join(d["partial_json"] for d in deltas)) == ARGS
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"
    assert payloads[-2]["usage"]["output_tokens"] == COMPLETION_TOKENS


# Gemini


async def test_gemini_function_call(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{GEMINI}:generateContent", json=_gemini())
    assert r.status_code == 200
    data = r.json()
    candidate = data["candidates"][0]
    assert candidate["content"] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": ARGS}}],
    }
    assert candidate["finishReason"] == "STOP"
    assert data["usageMetadata"]["candidatesTokenCount"] == COMPLETION_TOKENS


@pytest.mark.parametrize("sse_mode", [True, False])
async def test_gemini_stream(client: httpx.AsyncClient, sse: SSE, sse_mode: bool) -> None:
    query = "?alt=sse" if sse_mode else ""
    r = await client.post(f"{GEMINI}:streamGenerateContent{query}", json=_gemini())
    assert r.status_code == 200
    chunks = [orjson.loads(data) for _, data in sse(r.text)] if sse_mode else r.json()
    assert len(chunks) == 2
    first, last = (c["candidates"][0] for c in chunks)
    assert first["content"]["parts"] == [{"functionCall": {"name": "get_weather", "args": ARGS}}]
    assert "finishReason" not in first
    assert last["finishReason"] == "STOP"
    assert "functionCall" not in last["content"]["parts"][0]
    assert all(c["usageMetadata"]["candidatesTokenCount"] == COMPLETION_TOKENS for c in chunks)


# Cohere v2


async def test_cohere_tool_call(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/chat", json=_cohere())
    assert r.status_code == 200
    data = r.json()
    assert data["finish_reason"] == "TOOL_CALL"
    [call] = data["message"]["tool_calls"]
    assert call["id"] and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": ARGUMENTS}
    assert data["usage"]["tokens"]["output_tokens"] == COMPLETION_TOKENS


async def test_cohere_stream(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post("/v2/chat", json=_cohere(stream=True))
    events = sse(r.text)
    names = [name for name, _ in events]
    payloads = [orjson.loads(data) for _, data in events]
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    assert names[:2] == ["message-start", "tool-call-start"]
    assert names[-2:] == ["tool-call-end", "message-end"]
    assert set(names[2:-2]) == {"tool-call-delta"}
    start = payloads[1]["delta"]["message"]["tool_calls"]
    assert start["id"] and start["type"] == "function"
    assert start["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [p["delta"]["message"]["tool_calls"]["function"]["arguments"] for p in payloads[2:-2]]
    assert "".join(fragments) == ARGUMENTS
    assert all(p["index"] == 0 for p in payloads[1:-1])
    end = payloads[-1]["delta"]
    assert end["finish_reason"] == "TOOL_CALL"
    assert end["usage"]["tokens"]["output_tokens"] == COMPLETION_TOKENS


async def test_chunk_chars_splits_arguments(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post("/v2/chat", json=_cohere(stream=True), headers={"x-mock-fault": "chunk_chars=5"})
    deltas = [orjson.loads(data) for name, data in sse(r.text) if name == "tool-call-delta"]
    fragments = [d["delta"]["message"]["tool_calls"]["function"]["arguments"] for d in deltas]
    assert len(fragments) == (len(ARGUMENTS) + 4) // 5
    assert "".join(fragments) == ARGUMENTS
