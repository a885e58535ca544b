"""A request that forces a tool call (OpenAI `tool_choice`, Anthropic `tool_choice`, Gemini `toolConfig`,
Cohere `tool_choice`, Bedrock `toolConfig.toolChoice`) gets one, in each wire format, whole and streamed;
a forced function that is not declared is a 400 in the wire's error shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

SSE = Callable[[str], list[tuple[str | None, str]]]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "units"],
}
BOOK_SCHEMA = {
    "type": "object",
    "properties": {
        "when": {
            "type": "object",
            "properties": {"date": {"type": "string"}, "flex": {"type": "number"}},
            "required": ["date", "flex"],
        },
        "guests": {"type": "array", "items": {"type": "string"}},
        "confirm": {"type": "boolean"},
        "count": {"type": "integer"},
    },
    "required": ["when", "guests", "confirm", "count"],
}
WEATHER_ARGS = {"city": "example", "units": "celsius"}
BOOK_ARGS = {"when": {"date": "example", "flex": 1.0}, "guests": [], "confirm": True, "count": 1}
ARGS = {"get_weather": WEATHER_ARGS, "book_table": BOOK_ARGS}


def _arguments(name: str) -> str:
    """The arguments JSON as the mock sends it (compact, required order)."""
    return orjson.dumps(ARGS[name]).decode()


def _tokens(name: str) -> int:
    return (len(_arguments(name)) + 3) // 4


# OpenAI (and the OpenAI-compatible providers and Azure, which share the wire)

OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "book_table", "description": "book", "parameters": BOOK_SCHEMA}},
]


def _openai(choice: Any, stream: bool = False, text: str = "weather?", **extra: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "tools": OPENAI_TOOLS, **extra}
    if choice is not None:
        body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    return body


def _named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


@pytest.mark.parametrize(
    ("choice", "name"),
    [("required", "get_weather"), (_named("book_table"), "book_table"), ("any", "get_weather")],
)
async def test_openai_forced(client: httpx.AsyncClient, choice: Any, name: str) -> None:
    r = await client.post("/v1/chat/completions", json=_openai(choice))
    assert r.status_code == 200
    data = r.json()
    [choice_out] = data["choices"]
    assert choice_out["finish_reason"] == "tool_calls"
    message = choice_out["message"]
    assert message["role"] == "assistant" and message["content"] is None
    [call] = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": name, "arguments": _arguments(name)}
    assert orjson.loads(call["function"]["arguments"]) == ARGS[name]
    assert data["usage"]["completion_tokens"] == _tokens(name)


@pytest.mark.parametrize(("choice", "name"), [("required", "get_weather"), (_named("book_table"), "book_table")])
async def test_openai_forced_stream(client: httpx.AsyncClient, sse: SSE, choice: Any, name: str) -> None:
    body = _openai(choice, stream=True, stream_options={"include_usage": True})
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    events = [data for _, data in sse(r.text)]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(data) for data in events[:-1]]
    assert chunks.pop()["usage"]["completion_tokens"] == _tokens(name)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None}
    [start] = deltas[1]["tool_calls"]
    assert start["index"] == 0 and start["id"].startswith("call_") and start["type"] == "function"
    assert start["function"] == {"name": name, "arguments": ""}
    pieces = [d["tool_calls"][0] for d in deltas[2:-1]]
    assert len(pieces) > 1
    assert all(p["index"] == 0 and set(p) == {"index", "function"} for p in pieces)
    assert "".join(p["function"]["arguments"] for p in pieces) == _arguments(name)
    assert deltas[-1] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_openai_allowed_tools_required(client: httpx.AsyncClient) -> None:
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [_named("book_table")]}}
    [call] = (await client.post("/v1/chat/completions", json=_openai(choice))).json()["choices"][0]["message"][
        "tool_calls"
    ]
    assert call["function"]["name"] == "book_table"
    auto = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [_named("book_table")]}}
    message = (await client.post("/v1/chat/completions", json=_openai(auto))).json()["choices"][0]["message"]
    assert message["content"] == "Echo: weather?"


async def test_openai_n_choices_each_call(client: httpx.AsyncClient) -> None:
    data = (await client.post("/v1/chat/completions", json=_openai("required", n=2))).json()
    assert [c["message"]["tool_calls"][0]["function"]["name"] for c in data["choices"]] == ["get_weather"] * 2


@pytest.mark.parametrize("choice", [None, "auto", "none"])
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_unforced_is_text(client: httpx.AsyncClient, choice: Any, stream: bool) -> None:
    r = await client.post("/v1/chat/completions", json=_openai(choice, stream=stream))
    assert r.status_code == 200
    assert "tool_calls" not in r.text
    assert "Echo: " in r.text


async def test_openai_directive_wins_over_tool_choice(client: httpx.AsyncClient) -> None:
    body = _openai("required", text="[[mock tool_call=lookup]]")
    [call] = (await client.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "lookup", "arguments": "{}"}


async def test_openai_status_fault_still_applies(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=_openai("required", text="[[mock status=503]]"))
    assert r.status_code == 503


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_openai(_named("nope")), "no function named 'nope'"),
        (_openai("required", tools=None), "only allowed when 'tools' are specified"),
        (_openai(_named("get_weather"), tools=[]), "only allowed when 'tools' are specified"),
        (_openai("sometimes"), "Invalid value for 'tool_choice'"),
        (_openai({"type": "function"}), "Invalid value for 'tool_choice'"),
        (
            _openai({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [_named("nope")]}}),
            "no function named 'nope'",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_bad_tool_choice_is_400(
    client: httpx.AsyncClient, body: dict[str, Any], words: str, stream: bool
) -> None:
    r = await client.post("/v1/chat/completions", json={**body, "stream": stream})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]


async def test_azure_forced(client: httpx.AsyncClient) -> None:
    body = _openai(_named("book_table"))
    del body["model"]
    r = await client.post("/openai/deployments/gpt-4o/chat/completions", json=body)
    [call] = r.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "book_table", "arguments": _arguments("book_table")}


# Anthropic

ANTHROPIC_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 1},  # a server tool: never forced
    {"name": "get_weather", "input_schema": WEATHER_SCHEMA},
    {"name": "book_table", "description": "book", "input_schema": BOOK_SCHEMA},
]


def _anthropic(choice: Any, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": ANTHROPIC_TOOLS,
        **extra,
    }
    if choice is not None:
        body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    return body


@pytest.mark.parametrize(
    ("choice", "name"),
    [
        ({"type": "any"}, "get_weather"),
        ({"type": "tool", "name": "book_table"}, "book_table"),
        ({"type": "any", "disable_parallel_tool_use": True}, "get_weather"),
    ],
)
async def test_anthropic_forced(client: httpx.AsyncClient, choice: Any, name: str) -> None:
    r = await client.post("/v1/messages", json=_anthropic(choice))
    assert r.status_code == 200
    data = r.json()
    [block] = data["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["name"] == name and block["input"] == ARGS[name]
    assert data["stop_reason"] == "tool_use"
    assert data["usage"]["output_tokens"] == _tokens(name)


@pytest.mark.parametrize(
    ("choice", "name"), [({"type": "any"}, "get_weather"), ({"type": "tool", "name": "book_table"}, "book_table")]
)
async def test_anthropic_forced_stream(client: httpx.AsyncClient, sse: SSE, choice: Any, name: str) -> None:
    r = await client.post("/v1/messages", json=_anthropic(choice, stream=True))
    assert r.status_code == 200
    events = sse(r.text)
    names = [event for event, _ in events]
    payloads = [orjson.loads(data) for _, data in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = payloads[1]
    assert start["index"] == 0
    block = start["content_block"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["name"] == name and block["input"] == {}
    deltas = [p["delta"] for p in payloads[3:-3]]
    assert len(deltas) > 1 and all(d["type"] == "input_json_delta" for d in deltas)
    assert orjson.loads("".join(d["partial_json"] for d in deltas)) == ARGS[name]
    assert payloads[-3] == {"type": "content_block_stop", "index": 0}
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"
    assert payloads[-2]["usage"]["output_tokens"] == _tokens(name)


@pytest.mark.parametrize("choice", [None, {"type": "auto"}, {"type": "none"}])
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_unforced_is_text(client: httpx.AsyncClient, choice: Any, stream: bool) -> None:
    r = await client.post("/v1/messages", json=_anthropic(choice, stream=stream))
    assert r.status_code == 200
    assert "tool_use" not in r.text
    assert "Echo: " in r.text


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_anthropic({"type": "tool", "name": "nope"}), "Tool 'nope' not found"),
        (_anthropic({"type": "tool", "name": "web_search"}), "Tool 'web_search' not found"),
        (_anthropic({"type": "tool"}), "tool_choice.tool.name"),
        (_anthropic({"type": "any"}, tools=None), "tool_choice: may only be specified while providing tools"),
        (_anthropic({"type": "sometimes"}), "tool_choice.type"),
        (_anthropic("required"), "tool_choice.type"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_bad_tool_choice_is_400(
    client: httpx.AsyncClient, body: dict[str, Any], words: str, stream: bool
) -> None:
    r = await client.post("/v1/messages", json={**body, "stream": stream})
    assert r.status_code == 400
    data = r.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert words in data["error"]["message"]


# Gemini

GEMINI = "/v1beta/models/gemini-2.0-flash"
GEMINI_BOOK = {  # Gemini's OpenAPI-style Schema: upper-case type names
    "type": "OBJECT",
    "properties": {
        "when": {
            "type": "OBJECT",
            "properties": {"date": {"type": "STRING"}, "flex": {"type": "NUMBER"}},
            "required": ["date", "flex"],
        },
        "guests": {"type": "ARRAY", "items": {"type": "STRING"}},
        "confirm": {"type": "BOOLEAN"},
        "count": {"type": "INTEGER"},
    },
    "required": ["when", "guests", "confirm", "count"],
}
GEMINI_TOOLS = [
    {"googleSearch": {}},
    {"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": WEATHER_SCHEMA}]},
    {"functionDeclarations": [{"name": "book_table", "parameters": GEMINI_BOOK}]},
]


def _gemini(mode: str | None, allowed: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "weather?"}]}], "tools": GEMINI_TOOLS}
    if mode is not None:
        config: dict[str, Any] = {"mode": mode}
        if allowed is not None:
            config["allowedFunctionNames"] = allowed
        body["toolConfig"] = {"functionCallingConfig": config}
    return {**body, **extra}


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (_gemini("ANY"), "get_weather"),
        (_gemini("ANY", ["book_table"]), "book_table"),
        (_gemini("ANY", ["book_table", "get_weather"]), "get_weather"),  # the first declared of those allowed
        (_gemini("ANY", []), "get_weather"),
        (  # snake_case spelling, as the REST API also takes it
            {
                "contents": [{"parts": [{"text": "weather?"}]}],
                "tools": [{"function_declarations": [{"name": "book_table", "parameters": GEMINI_BOOK}]}],
                "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["book_table"]}},
            },
            "book_table",
        ),
    ],
)
async def test_gemini_forced(client: httpx.AsyncClient, body: dict[str, Any], name: str) -> None:
    r = await client.post(f"{GEMINI}:generateContent", json=body)
    assert r.status_code == 200
    data = r.json()
    [candidate] = data["candidates"]
    assert candidate["content"] == {"role": "model", "parts": [{"functionCall": {"name": name, "args": ARGS[name]}}]}
    assert candidate["finishReason"] == "STOP"
    assert data["usageMetadata"]["candidatesTokenCount"] == _tokens(name)


@pytest.mark.parametrize("sse_mode", [True, False])
async def test_gemini_forced_stream(client: httpx.AsyncClient, sse: SSE, sse_mode: bool) -> None:
    query = "?alt=sse" if sse_mode else ""
    r = await client.post(f"{GEMINI}:streamGenerateContent{query}", json=_gemini("ANY", ["book_table"]))
    assert r.status_code == 200
    chunks = [orjson.loads(data) for _, data in sse(r.text)] if sse_mode else r.json()
    first, last = (c["candidates"][0] for c in chunks)
    assert first["content"]["parts"] == [{"functionCall": {"name": "book_table", "args": BOOK_ARGS}}]
    assert "finishReason" not in first
    assert last["finishReason"] == "STOP"
    assert all(c["usageMetadata"]["candidatesTokenCount"] == _tokens("book_table") for c in chunks)


@pytest.mark.parametrize("mode", [None, "AUTO", "NONE", "VALIDATED", "MODE_UNSPECIFIED"])
async def test_gemini_unforced_is_text(client: httpx.AsyncClient, mode: str | None) -> None:
    r = await client.post(f"{GEMINI}:generateContent", json=_gemini(mode))
    assert r.status_code == 200
    assert r.json()["candidates"][0]["content"]["parts"] == [{"text": "Echo: weather?"}]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_gemini("ANY", ["nope"]), "allowed_function_names[0]: function 'nope' is not declared"),
        (_gemini("ANY", ["book_table", "nope"]), "allowed_function_names[1]"),
        (_gemini("ANY", tools=[{"googleSearch": {}}]), "Function calling config is set without function_declarations"),
        (_gemini("ANY", tools=None), "without function_declarations"),
        (_gemini("SOMETIMES"), "function_calling_config.mode"),
    ],
)
@pytest.mark.parametrize("action", ["generateContent", "streamGenerateContent?alt=sse"])
async def test_gemini_bad_tool_config_is_400(
    client: httpx.AsyncClient, body: dict[str, Any], words: str, action: str
) -> None:
    r = await client.post(f"{GEMINI}:{action}", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert words in error["message"]


# Cohere v2 (no named choice: the gateway offers only the named tool with REQUIRED)


def _cohere(choice: str | None, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body = {**_openai(None, stream=stream), "model": "command-a-03-2025", **extra}
    if choice is not None:
        body["tool_choice"] = choice
    return body


async def test_cohere_required(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/chat", json=_cohere("REQUIRED"))
    assert r.status_code == 200
    data = r.json()
    assert data["finish_reason"] == "TOOL_CALL"
    [call] = data["message"]["tool_calls"]
    assert call["id"] and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": _arguments("get_weather")}
    assert data["usage"]["tokens"]["output_tokens"] == _tokens("get_weather")


async def test_cohere_required_stream(client: httpx.AsyncClient, sse: SSE) -> None:
    r = await client.post("/v2/chat", json=_cohere("REQUIRED", stream=True, tools=OPENAI_TOOLS[1:]))
    events = sse(r.text)
    names = [name for name, _ in events]
    payloads = [orjson.loads(data) for _, data in events]
    assert names[:2] == ["message-start", "tool-call-start"]
    assert names[-2:] == ["tool-call-end", "message-end"]
    assert set(names[2:-2]) == {"tool-call-delta"}
    start = payloads[1]["delta"]["message"]["tool_calls"]
    assert start["function"] == {"name": "book_table", "arguments": ""}
    pieces = [p["delta"]["message"]["tool_calls"]["function"]["arguments"] for p in payloads[2:-2]]
    assert len(pieces) > 1 and "".join(pieces) == _arguments("book_table")
    assert payloads[-1]["delta"]["finish_reason"] == "TOOL_CALL"


@pytest.mark.parametrize("choice", [None, "NONE"])
@pytest.mark.parametrize("stream", [False, True])
async def test_cohere_unforced_is_text(client: httpx.AsyncClient, choice: str | None, stream: bool) -> None:
    r = await client.post("/v2/chat", json=_cohere(choice, stream=stream))
    assert r.status_code == 200
    assert "TOOL_CALL" not in r.text and "tool-call" not in r.text
    assert "Echo: " in r.text


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_cohere("REQUIRED", tools=None), "needs at least one tool"),
        (_cohere("REQUIRED", tools=[]), "needs at least one tool"),
        (_cohere("required"), "tool_choice must be one of REQUIRED, NONE"),
        (_cohere("AUTO"), "tool_choice must be one of REQUIRED, NONE"),
    ],
)
async def test_cohere_bad_tool_choice_is_400(client: httpx.AsyncClient, body: dict[str, Any], words: str) -> None:
    r = await client.post("/v2/chat", json=body)
    assert r.status_code == 400
    data = r.json()
    assert set(data) == {"id", "message"} and words in data["message"]


# Bedrock Converse

BEDROCK = "/model/anthropic.claude-3-5-haiku-20241022-v1:0"
BEDROCK_TOOLS = [
    {"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER_SCHEMA}}},
    {"cachePoint": {"type": "default"}},
    {"toolSpec": {"name": "book_table", "description": "book", "inputSchema": {"json": BOOK_SCHEMA}}},
]


def _bedrock(choice: Any, tools: Any = BEDROCK_TOOLS) -> dict[str, Any]:
    config: dict[str, Any] = {"tools": tools}
    if choice is not None:
        config["toolChoice"] = choice
    return {"messages": [{"role": "user", "content": [{"text": "weather?"}]}], "toolConfig": config}


@pytest.mark.parametrize(
    ("choice", "name"), [({"any": {}}, "get_weather"), ({"tool": {"name": "book_table"}}, "book_table")]
)
async def test_bedrock_forced(client: httpx.AsyncClient, choice: Any, name: str) -> None:
    r = await client.post(f"{BEDROCK}/converse", json=_bedrock(choice))
    assert r.status_code == 200
    data = r.json()
    [block] = data["output"]["message"]["content"]
    use = block["toolUse"]
    assert use["toolUseId"].startswith("tooluse_")
    assert use["name"] == name and use["input"] == ARGS[name]
    assert data["stopReason"] == "tool_use"
    assert data["usage"]["outputTokens"] == _tokens(name)


async def test_bedrock_forced_stream(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BEDROCK}/converse-stream", json=_bedrock({"tool": {"name": "book_table"}}))
    assert r.status_code == 200
    buffer = EventStreamBuffer()
    buffer.add_data(r.content)
    frames = [(m.headers[":event-type"], orjson.loads(m.payload)) for m in buffer]
    names = [name for name, _ in frames]
    assert names[:2] == ["messageStart", "contentBlockStart"]
    assert names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    start = frames[1][1]["start"]["toolUse"]
    assert start["name"] == "book_table" and start["toolUseId"].startswith("tooluse_")
    pieces = [p["delta"]["toolUse"]["input"] for name, p in frames if name == "contentBlockDelta"]
    assert len(pieces) > 1 and "".join(pieces) == _arguments("book_table")
    assert frames[-2][1] == {"stopReason": "tool_use"}
    assert frames[-1][1]["usage"]["outputTokens"] == _tokens("book_table")


@pytest.mark.parametrize("choice", [None, {"auto": {}}])
async def test_bedrock_unforced_is_text(client: httpx.AsyncClient, choice: Any) -> None:
    r = await client.post(f"{BEDROCK}/converse", json=_bedrock(choice))
    assert r.status_code == 200
    assert r.json()["output"]["message"]["content"] == [{"text": "Echo: weather?"}]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_bedrock({"tool": {"name": "nope"}}), "requires a tool named nope"),
        (_bedrock({"any": {}}, tools=[{"cachePoint": {"type": "default"}}]), "requires at least one toolSpec"),
        (_bedrock({"tool": {}}), "toolChoice.tool.name"),
        (_bedrock({"none": {}}), "exactly one of auto, any, tool"),
        (_bedrock({"any": {}, "auto": {}}), "exactly one of auto, any, tool"),
    ],
)
@pytest.mark.parametrize("action", ["converse", "converse-stream"])
async def test_bedrock_bad_tool_choice_is_400(
    client: httpx.AsyncClient, body: dict[str, Any], words: str, action: str
) -> None:
    r = await client.post(f"{BEDROCK}/{action}", json=body)
    assert r.status_code == 400
    assert r.headers["x-amzn-errortype"] == "ValidationException"
    data = r.json()
    assert data["__type"] == "ValidationException" and words in data["message"]
