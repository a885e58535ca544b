"""OpenAI-compatible Chat Completions (OpenAI, vLLM, Ollama, LM Studio, ...): the canonical shape
already, so requests pass through with the target model and streams with usage switched on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.config import ProviderConfig
from schemas.errors import GatewayError
from stages.providers.base import HttpCall, SseEvent, StreamDecoder, StreamState
from stages.providers.common import (
    build_headers,
    classify,
    error_message,
    in_band_error,
    load_event_json,
    usage,
)


class OpenAIStreamDecoder:
    """Passes chunks through unchanged, noting usage and finish reasons; ``[DONE]`` ends the stream."""

    def __init__(self) -> None:
        self.state = StreamState()
        self._last: Mapping[str, Any] = {}
        self._usage_chunk_seen = False

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        data = event.data.strip()
        if not data:
            return []
        if data == "[DONE]":
            self.state.finished = True
            return self._synthesized_usage()
        chunk = load_event_json(data)
        error = chunk.get("error")
        if error:
            code = error.get("code") if isinstance(error, Mapping) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            raise in_band_error(error, status)
        choices = chunk.get("choices")
        reported = chunk.get("usage")
        if isinstance(reported, Mapping):
            self.state.prompt_tokens = reported.get("prompt_tokens", self.state.prompt_tokens)
            self.state.completion_tokens = reported.get("completion_tokens", self.state.completion_tokens)
            self._usage_chunk_seen = self._usage_chunk_seen or not choices
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, Mapping) and choice.get("finish_reason"):
                self.state.finish_reason = str(choice["finish_reason"])
        self._last = chunk
        return [chunk]

    def _synthesized_usage(self) -> list[dict[str, Any]]:
        """Servers that put usage on a content chunk get the usage-only chunk the contract promises."""
        if self._usage_chunk_seen or (
            self.state.prompt_tokens is None and self.state.completion_tokens is None
        ):
            return []
        head = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
        return [
            {**head, "choices": [], "usage": usage(self.state.prompt_tokens, self.state.completion_tokens)}
        ]


class OpenAICompatAdapter:
    def to_provider_request(
        self,
        provider: ProviderConfig,
        model: str,
        body: Mapping[str, Any],
        *,
        stream: bool,
        api_key: str | None,
    ) -> HttpCall:
        payload = dict(body)
        payload["model"] = model
        if stream:
            options = payload.get("stream_options")
            payload["stream"] = True
            payload["stream_options"] = {
                **(options if isinstance(options, Mapping) else {}),
                "include_usage": True,
            }
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        url = provider.base_url.rstrip("/") + "/chat/completions"
        return HttpCall("POST", url, build_headers(provider, auth), payload)

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]:
        response = dict(data)
        response.setdefault("model", model)
        return response

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder:
        return OpenAIStreamDecoder()

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return classify(status, headers, error_message(body))
