from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.anthropic import AnthropicAdapter
from stages.providers.base import SseEvent

from .contract_base import ProviderContract


class TestAnthropicContract(ProviderContract):
    provider_type = "anthropic"
    adapter_class = AnthropicAdapter
    config: ClassVar[dict[str, Any]] = {
        "type": "anthropic",
        "base_url": "https://api.anthropic.com",
        "headers": {"x-gateway-test": "1"},
        "default_max_tokens": 1024,
    }
    auth_header = "x-api-key"

    def test_anthropic_version_comes_from_config(self) -> None:
        body = {"model": "a", "messages": [{"role": "user", "content": "x"}]}
        call = self.adapter.to_provider_request(
            self.provider(anthropic_version="2099-01-01"), "claude", body, stream=False, api_key="k"
        )
        assert call.headers["anthropic-version"] == "2099-01-01"

    def test_ping_and_unknown_events_emit_nothing(self) -> None:
        decoder = self.adapter.stream_decoder(model="m", request_id="r")
        assert decoder.feed(SseEvent("ping", '{"type": "ping"}')) == []
        assert decoder.feed(SseEvent("future_event", '{"type": "future_event"}')) == []
        assert not decoder.state.finished

    def test_parallel_tool_calls_false_without_tool_choice_keeps_auto(self) -> None:
        body = {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "parallel_tool_calls": False,
        }
        call = self.adapter.to_provider_request(self.provider(), "claude", body, stream=False, api_key="k")
        assert call.json is not None
        assert call.json["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
