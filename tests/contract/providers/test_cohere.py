from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest

from infra.doubles.mock_provider.server import MockProvider
from schemas.errors import ProviderError
from stages.providers.base import HttpCall, ProviderAdapter, SseEvent
from stages.providers.cohere import CohereAdapter
from stages.providers.registry import ADAPTERS
from stages.providers.sse import SseParser

from .contract_base import REQUEST_ID, ProviderContract, assemble


class TestCohereContract(ProviderContract):
    provider_type = "cohere"
    adapter_class = CohereAdapter
    config: ClassVar[dict[str, Any]] = {"type": "cohere", "headers": {"x-gateway-test": "1"}}
    auth_header = "Authorization"

    @property
    def adapter(self) -> ProviderAdapter:
        return CohereAdapter()  # constructed directly until the registry line lands

    def test_registry_returns_this_adapter(self) -> None:
        if "cohere" in ADAPTERS:
            assert isinstance(ADAPTERS["cohere"], CohereAdapter)

    def test_base_url_comes_from_config(self) -> None:
        body = {"messages": [{"role": "user", "content": "x"}]}
        call = self.adapter.to_provider_request(
            self.provider(base_url="https://cohere.internal/"), "command-a", body, stream=False, api_key="k"
        )
        assert call.url == "https://cohere.internal/v2/chat"

    @pytest.mark.parametrize(("reason", "expected"), [("STOP_SEQUENCE", "stop"), (None, "stop")])
    def test_other_finish_reasons(self, reason: str | None, expected: str) -> None:
        data = {"id": "x", "finish_reason": reason, "message": {"content": [{"type": "text", "text": "a"}]}}
        out = self.adapter.from_provider_response(data, model="m", request_id=REQUEST_ID)
        assert out["choices"][0]["finish_reason"] == expected

    @pytest.mark.parametrize(("reason", "code"), [("ERROR", "provider_500"), ("TIMEOUT", "provider_504")])
    def test_failed_generation_raises_a_retryable_error(self, reason: str, code: str) -> None:
        data = {"id": "x", "finish_reason": reason, "message": {"content": []}}
        with pytest.raises(ProviderError) as raised:
            self.adapter.from_provider_response(data, model="m", request_id=REQUEST_ID)
        assert raised.value.retryable and raised.value.code == code

    def test_thinking_tool_plan_citations_and_unknown_events_emit_nothing(self) -> None:
        decoder = self.adapter.stream_decoder(model="m", request_id="r")
        thinking = '{"type":"content-delta","index":0,"delta":{"message":{"content":{"thinking":"hmm"}}}}'
        assert decoder.feed(SseEvent("content-delta", thinking)) == []
        plan = '{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will"}}}'
        assert decoder.feed(SseEvent("tool-plan-delta", plan)) == []
        assert decoder.feed(SseEvent("citation-start", '{"type":"citation-start","index":0}')) == []
        assert decoder.feed(SseEvent("debug", '{"type":"debug"}')) == []
        assert not decoder.state.finished


# ---------------------------------------------------------------------------------------------------
# The adapter against the bundled mock provider's Cohere v2 wire, in-process


@pytest.fixture
async def mock_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=MockProvider())) as client:
        yield client


def _call(text: str, *, stream: bool) -> HttpCall:
    provider = TestCohereContract().provider(base_url="http://mock")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    body = {"model": "smart", "messages": messages}
    return CohereAdapter().to_provider_request(provider, "command-a-03-2025", body, stream=stream, api_key="co-key")


async def test_adapter_against_mock_provider(mock_client: httpx.AsyncClient) -> None:
    call = _call("hello there", stream=False)
    response = await mock_client.request(call.method, call.url, headers=call.headers, json=call.json)
    assert response.status_code == 200
    out = CohereAdapter().from_provider_response(response.json(), model="command-a-03-2025", request_id=REQUEST_ID)
    assert out["choices"][0]["message"]["content"] == "Echo: hello there"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 2 + 3, "completion_tokens": 5, "total_tokens": 10}


async def test_adapter_stream_against_mock_provider(mock_client: httpx.AsyncClient) -> None:
    call = _call("hello there", stream=True)
    decoder = CohereAdapter().stream_decoder(model="command-a-03-2025", request_id=REQUEST_ID)
    parser = SseParser()
    chunks: list[dict[str, Any]] = []
    async with mock_client.stream(call.method, call.url, headers=call.headers, json=call.json) as response:
        assert response.status_code == 200
        async for data in response.aiter_raw():
            for event in parser.feed(data):
                chunks += decoder.feed(event)
    for event in parser.flush():
        chunks += decoder.feed(event)
    assert decoder.state.finished
    result = assemble(chunks)
    assert result["choices"][0]["content"] == "Echo: hello there"
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}


async def test_mock_provider_errors_classify(mock_client: httpx.AsyncClient) -> None:
    call = _call("hi [[mock status=429 retry_after=4]]", stream=True)
    response = await mock_client.request(call.method, call.url, headers=call.headers, json=call.json)
    error = CohereAdapter().classify_error(response.status_code, response.headers, response.content)
    assert error.retryable and error.retry_after_s == 4.0 and "mock fault: HTTP 429" in error.message
