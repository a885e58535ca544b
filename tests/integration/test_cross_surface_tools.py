"""Any client to any provider, tools included: the provider answers with a tool call in its own wire
format and each official SDK gets it back in its own shape, streaming and not."""

from __future__ import annotations

import base64
import json
import uuid

import anthropic
import openai
import pytest

from infra.operator.launcher import DEMO_KEY, RunningGateway

pytestmark = pytest.mark.integration

MODELS = ["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash", "command-r", "nova-lite"]
ARGS = {"city": "Paris", "days": 2}
TOOL_DIRECTIVE = f"[[mock tool_call=get_weather args_b64={base64.b64encode(json.dumps(ARGS).encode()).decode()}]]"
OPENAI_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}
SERVED_BY = {"gpt-4o-mini": "mock-openai", "claude-3-5-haiku": "mock-anthropic", "gemini-2.0-flash": "mock-gemini",
             "command-r": "mock-cohere", "nova-lite": "mock-bedrock"}


def check_row(gateway: RunningGateway, marker: str, model: str, endpoint: str, stream: bool) -> None:
    """The request's one row: served provider, tokens, a cost (all four are priced), its surface."""
    rows = gateway.wait_rows(
        "SELECT provider, endpoint, stream, prompt_tokens, completion_tokens, usage_source, cost_usd FROM requests "
        f"WHERE position(request_body, '{marker}') > 0", lambda r: len(r) == 1)
    row = rows[0]
    assert (row["provider"], row["endpoint"], bool(row["stream"])) == (SERVED_BY[model], endpoint, stream)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["usage_source"] == "provider"
    assert row["cost_usd"] is not None and float(row["cost_usd"]) > 0


ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather for a city",
                  "input_schema": OPENAI_TOOL["function"]["parameters"]}  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_gets_tool_calls(gateway: RunningGateway, model: str, stream: bool) -> None:
    marker = uuid.uuid4().hex
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=30) as client:
        messages = [{"role": "user", "content": f"weather {marker}? {TOOL_DIRECTIVE}"}]
        if not stream:
            choice = client.chat.completions.create(model=model, messages=messages, tools=[OPENAI_TOOL]).choices[0]
            assert choice.finish_reason == "tool_calls"
            calls = choice.message.tool_calls or []
            assert len(calls) == 1 and calls[0].function.name == "get_weather"
            assert json.loads(calls[0].function.arguments) == ARGS
            check_row(gateway, marker, model, "chat.completions", stream)
            return
        name, arguments, finish = "", "", None
        for chunk in client.chat.completions.create(model=model, messages=messages, tools=[OPENAI_TOOL],
                                                    stream=True):
            for c in chunk.choices:
                for call in c.delta.tool_calls or []:
                    name += (call.function.name or "") if call.function else ""
                    arguments += (call.function.arguments or "") if call.function else ""
                finish = c.finish_reason or finish
        assert name == "get_weather" and json.loads(arguments) == ARGS and finish == "tool_calls"
    check_row(gateway, marker, model, "chat.completions", stream)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_gets_tool_use(gateway: RunningGateway, model: str, stream: bool) -> None:
    marker = uuid.uuid4().hex
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=DEMO_KEY, max_retries=0, timeout=30) as claude:
        messages = [{"role": "user", "content": f"weather {marker}? {TOOL_DIRECTIVE}"}]
        if stream:
            with claude.messages.stream(model=model, max_tokens=64, tools=[ANTHROPIC_TOOL],
                                        messages=messages) as events:
                message = events.get_final_message()
        else:
            message = claude.messages.create(model=model, max_tokens=64, tools=[ANTHROPIC_TOOL], messages=messages)
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == ARGS
    assert message.usage.output_tokens > 0
    check_row(gateway, marker, model, "messages", stream)
