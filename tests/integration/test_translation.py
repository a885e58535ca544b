"""What crosses the gateway intact: unknown fields, images, and a provider's own 400 in the caller's shape."""

from __future__ import annotations

import anthropic
import openai
import pytest

from infra.operator.launcher import DEMO_KEY, RunningGateway, mock_requests

pytestmark = pytest.mark.integration

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def last_request_with(gateway: RunningGateway, marker: str) -> dict[str, object]:
    found = [r for r in mock_requests(gateway) if marker in str(r["body"])]
    assert found, f"the mock never received {marker!r}"
    body: dict[str, object] = found[-1]["body"]
    return body


def test_unknown_fields_pass_through_to_openai_compatible(client: openai.OpenAI, gateway: RunningGateway) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "passthrough please"}], seed=7,
        response_format={"type": "json_object"}, extra_body={"vendor_knob": {"level": 3}})
    sent = last_request_with(gateway, "passthrough please")
    assert sent["vendor_knob"] == {"level": 3} and sent["seed"] == 7
    assert sent["response_format"] == {"type": "json_object"}


def test_openai_image_reaches_gemini_inline(client: openai.OpenAI, gateway: RunningGateway) -> None:
    content = [{"type": "text", "text": "describe image one"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]
    answer = client.chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content == "Echo: describe image one"
    sent = last_request_with(gateway, "describe image one")
    parts = sent["contents"][-1]["parts"]  # type: ignore[index]
    assert {"inlineData": {"mimeType": "image/png", "data": PNG_B64}} in parts


def test_anthropic_image_reaches_openai_as_data_url(gateway: RunningGateway) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=DEMO_KEY, max_retries=0) as claude:
        claude.messages.create(model="gpt-4o-mini", max_tokens=32, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            {"type": "text", "text": "describe image two"}]}])
    sent = last_request_with(gateway, "describe image two")
    parts = sent["messages"][-1]["content"]  # type: ignore[index]
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}} in parts


def test_a_provider_400_keeps_its_message_in_each_callers_shape(client: openai.OpenAI,
                                                                 gateway: RunningGateway) -> None:
    bad = "[[mock status=400]] please"
    with pytest.raises(openai.BadRequestError) as from_openai:
        client.chat.completions.create(model="claude-3-5-haiku", messages=[{"role": "user", "content": bad}])
    assert "mock fault: HTTP 400" in from_openai.value.message
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=DEMO_KEY, max_retries=0) as claude:
        with pytest.raises(anthropic.BadRequestError) as from_anthropic:
            claude.messages.create(model="gemini-2.0-flash", max_tokens=8, messages=[{"role": "user", "content": bad}])
    error = from_anthropic.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error" and "mock fault: HTTP 400" in error["message"]
