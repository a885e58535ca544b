from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract, sse_events


class TestOpenAIContract(ProviderContract):
    provider_type = "openai"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {
        "type": "openai",
        "base_url": "https://api.openai.com/v1/",
        "headers": {"OpenAI-Organization": "org-gateway"},
    }
    auth_header = "Authorization"

    def test_non_stream_call_drops_stream_fields(self) -> None:
        body = {
            "model": "a",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": False},
        }
        call = self.adapter.to_provider_request(self.provider(), "gpt-4o", body, stream=False, api_key="k")
        assert call.json == {"model": "gpt-4o", "messages": body["messages"]}

    def test_stream_call_overrides_include_usage_false(self) -> None:
        body = {"model": "a", "messages": [], "stream_options": {"include_usage": False}}
        call = self.adapter.to_provider_request(self.provider(), "gpt-4o", body, stream=True, api_key="k")
        assert call.json is not None and call.json["stream_options"] == {"include_usage": True}

    def test_usage_on_a_content_chunk_gets_a_usage_only_chunk_at_done(self) -> None:
        chunks, state = self.decode(sse_events(self.fixture("stream_usage_on_last_choice.json")["sse"]))
        assert state.finished and chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        assert chunks[-1]["id"] == "chatcmpl-ollama-1"

    def test_response_without_model_gets_the_target_model(self) -> None:
        out = self.adapter.from_provider_response({"id": "x", "choices": []}, model="gpt-4o", request_id="r")
        assert out["model"] == "gpt-4o" and "usage" not in out
