"""Every adapter whose wire format the bundled mock provider speaks, run against it over HTTP (in
process): the request it builds is accepted, and the answer and stream it gets back translate to the
canonical shape with text and usage."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from infra.mock_provider.server import MockProvider
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


async def send(kind: str, stream: bool) -> tuple[Any, httpx.Response, bytes]:
    config = provider(kind)
    adapter = adapter_for(config)
    call = adapter.to_provider_request(config, "some-model", BODY, stream=stream, api_key="secret")
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
