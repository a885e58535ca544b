"""The official anthropic SDK, unmodified, against the whole gateway: any provider behind it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from infra.operator.launcher import DEMO_KEY, RunningGateway, mock_requests

pytestmark = pytest.mark.integration

# served by the OpenAI, Anthropic, Gemini, Cohere and Bedrock wire formats of the mock provider
MODELS = ["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash", "command-r", "nova-lite"]


@pytest.fixture
def claude(gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=DEMO_KEY, max_retries=0, timeout=30) as c:
        yield c


@pytest.mark.parametrize("model", MODELS)
def test_messages_round_trip(claude: anthropic.Anthropic, model: str) -> None:
    raw = claude.messages.with_raw_response.create(
        model=model, max_tokens=64, system="Answer briefly.",
        messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                  {"role": "user", "content": "hello from anthropic"}])
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello from anthropic"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-gateway-request-id"]


@pytest.mark.parametrize("model", MODELS)
def test_messages_stream(claude: anthropic.Anthropic, model: str) -> None:
    with claude.messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "stream it please"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: stream it please"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_raw_event_sequence(claude: anthropic.Anthropic) -> None:
    events = [e.type for e in claude.messages.create(
        model="gemini-2.0-flash", max_tokens=32, stream=True, messages=[{"role": "user", "content": "seq"}])]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    assert events[1] == "content_block_start" and "content_block_delta" in events
    assert events[-3] == "content_block_stop"


def test_tools_reach_the_provider_in_its_own_format(claude: anthropic.Anthropic, gateway: RunningGateway) -> None:
    tool = {"name": "get_weather", "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    message = claude.messages.create(
        model="gemini-2.0-flash", max_tokens=64, tools=[tool],
        messages=[{"role": "user", "content": "weather in Paris?"},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                                     "input": {"city": "Paris"}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                "content": "sunny, 21C"}, {"type": "text", "text": "thanks tool"}]}])
    assert message.content[0].text == "Echo: thanks tool"
    sent = [r for r in mock_requests(gateway) if "thanks tool" in str(r["body"])][-1]["body"]
    declarations = sent["tools"][0]["functionDeclarations"]
    assert declarations[0]["name"] == "get_weather"
    parts = [p for c in sent["contents"] for p in c["parts"]]
    assert any("functionCall" in p and p["functionCall"]["args"] == {"city": "Paris"} for p in parts)
    assert any("functionResponse" in p for p in parts)


def test_errors_use_the_anthropic_shape(gateway: RunningGateway) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError) as err:
            bad.messages.create(model="gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=DEMO_KEY, max_retries=0) as c:
        with pytest.raises(anthropic.NotFoundError):
            c.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.BadRequestError) as bad_request:
            c.messages.create(model="gpt-4o-mini", max_tokens=0, messages=[{"role": "user", "content": "x"}])
        assert bad_request.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        with pytest.raises(anthropic.RateLimitError):
            c.messages.create(model="claude-3-5-haiku", max_tokens=8, messages=[
                {"role": "user", "content": "[[mock status=429 fail_times=9 key=rl]] x"}])


def test_count_tokens_and_models(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": "count these tokens please"}])
    assert counted.input_tokens > 0
    assert {m.id for m in claude.models.list()} >= set(MODELS)


def test_requests_row_records_the_surface(claude: anthropic.Anthropic, gateway: RunningGateway) -> None:
    raw = claude.messages.with_raw_response.create(model="claude-3-5-haiku", max_tokens=16,
                                                   messages=[{"role": "user", "content": "which surface"}])
    request_id = raw.headers["x-gateway-request-id"]
    rows = gateway.wait_rows(f"SELECT endpoint, provider, prompt_tokens, cost_usd FROM requests "
                             f"WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    assert rows[0]["endpoint"] == "messages" and rows[0]["provider"] == "mock-anthropic"
    assert rows[0]["prompt_tokens"] > 0 and float(rows[0]["cost_usd"]) > 0
