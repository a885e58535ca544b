from __future__ import annotations

import json
from typing import Any, ClassVar

from stages.providers.gemini import GeminiAdapter

from .contract_base import ProviderContract, assemble, sse_events


class TestGeminiContract(ProviderContract):
    provider_type = "gemini"
    adapter_class = GeminiAdapter
    config: ClassVar[dict[str, Any]] = {
        "type": "gemini",
        "base_url": "https://generativelanguage.googleapis.com",
        "headers": {"x-gateway-test": "1"},
    }
    auth_header = "x-goog-api-key"

    def test_retry_after_header_wins_over_retry_info(self) -> None:
        error = self.classify(429, self.fixture("error_429.json")["body"], {"Retry-After": "3"})
        assert error.retry_after_s == 3.0

    def test_stream_with_two_candidates_finishes_when_both_have(self) -> None:
        def event(index: int, text: str, finish: str | None = None) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "index": index,
            }
            if finish:
                candidate["finishReason"] = finish
            return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}

        events = [event(0, "a"), event(1, "b"), event(0, "c", "STOP"), event(1, "d", "MAX_TOKENS")]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
        chunks, state = self.decode(sse_events(sse)[:3])
        assert not state.finished
        chunks, state = self.decode(sse_events(sse))
        assert state.finished and chunks[-1]["choices"] != []  # no usage reported, so no usage chunk
        choices = assemble(chunks)["choices"]
        assert [(c["content"], c["finish_reason"]) for c in choices] == [("ac", "stop"), ("bd", "length")]

    def test_blocked_prompt_in_a_stream_finishes_with_content_filter(self) -> None:
        blocked = {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
        }
        chunks, state = self.decode(sse_events(f"data: {json.dumps(blocked)}\n\n"))
        assert state.finished and state.finish_reason == "content_filter"
        assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}
