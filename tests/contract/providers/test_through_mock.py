"""Every adapter whose wire format the bundled mock provider speaks, run against it over HTTP (in
process): the request it builds is accepted, and the answer and stream it gets back translate to the
canonical shape with text and usage; a forcing `tool_choice` ("required", a named function) comes back
as that tool call."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from infra.doubles.mock_provider.server import MockProvider
from schemas.config import GatewayConfig, ProviderConfig
from stages.providers.registry import adapter_for

PROVIDERS: dict[str, dict[str, Any]] = {
    **{t: {"type": t, "base_url": "http://mock/v1", "api_key": "env:X"}
       for t in ("openai", "mistral", "groq", "together", "deepseek", "openrouter", "ollama", "vllm")},
    "azure": {"type": "azure", "base_url": "http://mock", "api_key": "env:X"},
    "anthropic": {"type": "anthropic", "base_url": "http://mock", "api_key": "env:X"},
    "gemini": {"type": "gemini", "base_url": "http://mock", "api_key": "env:X"},
    "cohere": {"type": "cohere", "base_url": "http://mock", "api_key": "env:X"},
    "bedrock": {"type": "bedrock", "region": "us-east-1", "base_url": "http://mock"},
}
# These read stream usage from where their real API puts it without ``stream_options`` (x_groq, the
# finish chunk); the mock, speaking plain OpenAI, puts it only where ``include_usage`` asks: the gateway
# then estimates it (usage_source = estimated).
USAGE_ELSEWHERE = {"groq", "mistral", "together"}
BODY = {"model": "alias", "messages": [{"role": "system", "content": "be brief"},
                                       {"role": "user", "content": "hello mock"}], "max_tokens": 64}


def provider(kind: str) -> ProviderConfig:
    return GatewayConfig.model_validate({"providers": {"p": PROVIDERS[kind]}}).providers["p"]


async def send(kind: str, stream: bool, body: dict[str, Any] = BODY) -> tuple[Any, httpx.Response, bytes]:
    config = provider(kind)
    adapter = adapter_for(config)
    call = adapter.to_provider_request(config, "some-model", body, stream=stream, api_key="secret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=MockProvider())) as client:
        content = call.content if call.content is not None else orjson.dumps(call.json)
        response = await client.request(call.method, call.url, headers=call.headers, content=content)
    return adapter, response, response.content


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_whole_answer(kind: str) -> None:
    adapter, response, body = await send(kind, stream=False)
    assert response.status_code == 200, body[:300]
    completion = adapter.from_provider_response(orjson.loads(body), model="some-model", request_id="r1")
    assert completion["choices"][0]["message"]["content"] == "Echo: hello mock"
    assert completion["usage"]["prompt_tokens"] > 0 and completion["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_stream(kind: str) -> None:
    adapter, response, body = await send(kind, stream=True)
    assert response.status_code == 200, body[:300]
    decoder = adapter.stream_decoder(model="some-model", request_id="r1")
    parser = adapter.stream_parser()
    chunks = [c for event in parser.feed(body) + parser.flush() for c in decoder.feed(event)]
    text = "".join((ch.get("delta") or {}).get("content") or "" for c in chunks for ch in c.get("choices") or [])
    assert text == "Echo: hello mock"
    assert decoder.state.finished
    usage = [c["usage"] for c in chunks if c.get("usage")]
    if kind not in USAGE_ELSEWHERE:
        assert usage and usage[-1]["prompt_tokens"] > 0 and usage[-1]["completion_tokens"] > 0


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
           "required": ["city"]}
BOOK = {"type": "object", "properties": {"guests": {"type": "integer"}, "vip": {"type": "boolean"}},
        "required": ["guests", "vip"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "book_table", "parameters": BOOK}},
]
FORCED = {"get_weather": {"city": "example"}, "book_table": {"guests": 1, "vip": True}}
CHOICES = {"required": "get_weather", "named": "book_table"}


async def send_forced(kind: str, choice: str, stream: bool) -> tuple[Any, bytes]:
    tool_choice = "required" if choice == "required" else {"type": "function", "function": {"name": "book_table"}}
    adapter, response, body = await send(kind, stream, {**BODY, "tools": TOOLS, "tool_choice": tool_choice})
    assert response.status_code == 200, body[:300]
    return adapter, body


@pytest.mark.parametrize("choice", sorted(CHOICES))
@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_forced_tool_call_whole(kind: str, choice: str) -> None:
    """The adapter's translation of a forcing `tool_choice` makes the mock call that tool, and the
    answer translates back to an OpenAI tool call."""
    adapter, body = await send_forced(kind, choice, stream=False)
    completion = adapter.from_provider_response(orjson.loads(body), model="some-model", request_id="r1")
    [answer] = completion["choices"]
    assert answer["finish_reason"] == "tool_calls"
    [call] = answer["message"]["tool_calls"]
    name = CHOICES[choice]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == name
    assert orjson.loads(call["function"]["arguments"]) == FORCED[name]


@pytest.mark.parametrize("choice", sorted(CHOICES))
@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_forced_tool_call_stream(kind: str, choice: str) -> None:
    adapter, body = await send_forced(kind, choice, stream=True)
    decoder = adapter.stream_decoder(model="some-model", request_id="r1")
    parser = adapter.stream_parser()
    chunks = [c for event in parser.feed(body) + parser.flush() for c in decoder.feed(event)]
    deltas = [ch.get("delta") or {} for c in chunks for ch in c.get("choices") or []]
    calls = [call for delta in deltas for call in delta.get("tool_calls") or []]
    assert calls and calls[0]["function"]["name"] == CHOICES[choice] and calls[0]["id"]
    assert {call["index"] for call in calls} == {0}
    arguments = "".join(call["function"].get("arguments") or "" for call in calls)
    assert orjson.loads(arguments) == FORCED[CHOICES[choice]]
    finishes = [ch["finish_reason"] for c in chunks for ch in c.get("choices") or [] if ch.get("finish_reason")]
    assert finishes == ["tool_calls"]
