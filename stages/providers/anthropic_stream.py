"""Anthropic Messages streaming events → OpenAI chunks.

``message_start`` → role chunk; ``content_block_start``/``_delta`` → content and tool-call deltas
(``text_delta``, ``input_json_delta``); ``message_delta`` → finish reason and output tokens;
``message_stop`` → finished + usage chunk; ``ping`` and thinking blocks are ignored; ``error`` raises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stages.providers.base import SseEvent, StreamState
from stages.providers.chunks import ChunkBuilder
from stages.providers.common import completion_id, dump_arguments, in_band_error, load_event_json, number

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# HTTP status Anthropic documents for each error type, to classify errors sent inside a stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH.get(str(stop_reason), "stop")


def prompt_tokens(reported: Mapping[str, Any]) -> int:
    """Input tokens including cache reads and writes, as OpenAI's ``prompt_tokens`` counts cached ones."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(number(reported.get(k)) for k in keys)


class AnthropicStreamDecoder:
    def __init__(self, *, model: str, request_id: str) -> None:
        self.state = StreamState()
        self._request_id = request_id
        self._chunks = ChunkBuilder(chunk_id=completion_id(None, request_id), model=model)
        self._tools: dict[int, int] = {}  # Anthropic content block index → OpenAI tool call index
        self._tools_with_arguments: set[int] = set()

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        data = load_event_json(event.data)
        kind = data.get("type") or event.event
        if kind == "error":
            error = data.get("error")
            status = _ERROR_STATUS.get(str(error.get("type")) if isinstance(error, Mapping) else "", 500)
            raise in_band_error(error, status)
        handler = _HANDLERS.get(str(kind))
        return handler(self, data) if handler else []  # ping and unknown events: nothing to say

    def _message_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        message = data.get("message")
        message = message if isinstance(message, Mapping) else {}
        self._chunks.id = completion_id(message.get("id"), self._request_id)
        self._chunks.model = str(message.get("model") or self._chunks.model)
        self._usage(message.get("usage"))
        return self._chunks.open()

    def _block_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        block = data.get("content_block")
        if not isinstance(block, Mapping):
            return []
        if block.get("type") == "text":
            return self._chunks.text(str(block.get("text") or ""))
        if block.get("type") == "tool_use":
            tool_index = len(self._tools)
            self._tools[number(data.get("index"))] = tool_index
            out = self._chunks.tool_start(tool_index, str(block.get("id")), str(block.get("name")))
            if block.get("input"):
                out += self._arguments(number(data.get("index")), dump_arguments(block["input"]))
            return out
        return []  # thinking, redacted_thinking, server tools: not part of the OpenAI shape

    def _block_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta")
        if not isinstance(delta, Mapping):
            return []
        if delta.get("type") == "text_delta":
            return self._chunks.text(str(delta.get("text") or ""))
        if delta.get("type") == "input_json_delta":
            return self._arguments(number(data.get("index")), str(delta.get("partial_json") or ""))
        return []

    def _arguments(self, block_index: int, fragment: str) -> list[dict[str, Any]]:
        if block_index not in self._tools or not fragment:
            return []
        self._tools_with_arguments.add(block_index)
        return self._chunks.tool_arguments(self._tools[block_index], fragment)

    def _block_stop(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        index = number(data.get("index"))
        if index in self._tools and index not in self._tools_with_arguments:
            return self._arguments(index, "{}")  # a tool called without arguments still gets valid JSON
        return []

    def _message_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._usage(data.get("usage"))
        delta = data.get("delta")
        reason = finish_reason(delta.get("stop_reason")) if isinstance(delta, Mapping) else None
        return self._chunks.finish(self.state, reason) if reason else []

    def _message_stop(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.state.finished = True
        return self._chunks.usage(self.state)

    def _usage(self, reported: Any) -> None:
        """Counts are cumulative (``message_start`` then ``message_delta``): keep the largest seen."""
        if not isinstance(reported, Mapping):
            return
        if any(
            k in reported for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ):
            self.state.prompt_tokens = max(self.state.prompt_tokens or 0, prompt_tokens(reported))
        if "output_tokens" in reported:
            self.state.completion_tokens = max(
                self.state.completion_tokens or 0, number(reported["output_tokens"])
            )


_HANDLERS = {
    "message_start": AnthropicStreamDecoder._message_start,
    "content_block_start": AnthropicStreamDecoder._block_start,
    "content_block_delta": AnthropicStreamDecoder._block_delta,
    "content_block_stop": AnthropicStreamDecoder._block_stop,
    "message_delta": AnthropicStreamDecoder._message_delta,
    "message_stop": AnthropicStreamDecoder._message_stop,
}
