"""Cohere v2 Chat streaming events → OpenAI chunks.

``message-start`` → id and role chunk; ``content-start``/``content-delta`` → text (thinking content is
ignored); ``tool-call-start``/``-delta``/``-end`` → tool-call deltas; ``message-end`` → finish reason,
usage chunk and finished. ``tool-plan-delta``, ``citation-*`` and ``debug`` are ignored. A
``message-end`` with finish reason ``ERROR``/``TIMEOUT`` raises the classified in-band error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stages.providers.base import SseEvent, StreamState
from stages.providers.chunks import ChunkBuilder
from stages.providers.common import completion_id, in_band_error, load_event_json, number

_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}

# Finish reasons that mean the generation failed, and the HTTP status they are classified as.
_FAILED = {"ERROR": 500, "TIMEOUT": 504}


def finish_reason(reason: Any, error: Any = None) -> str | None:
    """OpenAI's finish reason for Cohere's; raises the classified error for ``ERROR``/``TIMEOUT``."""
    status = _FAILED.get(str(reason))
    if status is not None:
        raise in_band_error(error or f"generation ended with finish_reason {reason}", status)
    if reason is None:
        return None
    return _FINISH.get(str(reason), "stop")


def token_counts(reported: Any) -> tuple[int, int] | None:
    """(input, output) tokens from ``usage.tokens``, else ``usage.billed_units``; ``None`` without either."""
    if not isinstance(reported, Mapping):
        return None
    for key in ("tokens", "billed_units"):
        counts = reported.get(key)
        if isinstance(counts, Mapping) and ("input_tokens" in counts or "output_tokens" in counts):
            return number(counts.get("input_tokens")), number(counts.get("output_tokens"))
    return None


def _message_delta(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data.delta.message`` (where Cohere puts content and tool-call pieces), or ``{}``."""
    delta = data.get("delta")
    message = delta.get("message") if isinstance(delta, Mapping) else None
    return message if isinstance(message, Mapping) else {}


class CohereStreamDecoder:
    def __init__(self, *, model: str, request_id: str) -> None:
        self.state = StreamState()
        self._request_id = request_id
        self._chunks = ChunkBuilder(chunk_id=completion_id(None, request_id), model=model)
        self._tools: dict[int, int] = {}  # Cohere tool-call index → OpenAI tool call index
        self._tools_with_arguments: set[int] = set()

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        data = load_event_json(event.data)
        handler = _HANDLERS.get(str(data.get("type") or event.event))
        return handler(self, data) if handler else []  # tool plans, citations, debug: nothing to say

    def _message_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._chunks.id = completion_id(data.get("id"), self._request_id)
        return self._chunks.open()

    def _content(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        content = _message_delta(data).get("content")
        text = content.get("text") if isinstance(content, Mapping) else None  # thinking has no "text"
        return self._chunks.text(text) if isinstance(text, str) else []

    def _tool_call(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        call = _message_delta(data).get("tool_calls")
        return call if isinstance(call, Mapping) else {}

    def _tool_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        call = self._tool_call(data)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        index = number(data.get("index"))
        self._tools[index] = tool_index = len(self._tools)
        out = self._chunks.tool_start(tool_index, str(call.get("id")), str(function.get("name")))
        return out + self._arguments(index, function.get("arguments"))

    def _tool_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        function = self._tool_call(data).get("function")
        fragment = function.get("arguments") if isinstance(function, Mapping) else None
        return self._arguments(number(data.get("index")), fragment)

    def _arguments(self, index: int, fragment: Any) -> list[dict[str, Any]]:
        if index not in self._tools or not isinstance(fragment, str) or not fragment:
            return []
        self._tools_with_arguments.add(index)
        return self._chunks.tool_arguments(self._tools[index], fragment)

    def _tool_end(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        index = number(data.get("index"))
        if index in self._tools and index not in self._tools_with_arguments:
            return self._arguments(index, "{}")  # a tool called without arguments still gets valid JSON
        return []

    def _message_end(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        reason = finish_reason(delta.get("finish_reason"), delta.get("error"))
        counts = token_counts(delta.get("usage"))
        if counts is not None:
            self.state.prompt_tokens, self.state.completion_tokens = counts
        self.state.finished = True
        out = self._chunks.finish(self.state, reason) if reason else []
        return out + self._chunks.usage(self.state)


_HANDLERS = {
    "message-start": CohereStreamDecoder._message_start,
    "content-start": CohereStreamDecoder._content,
    "content-delta": CohereStreamDecoder._content,
    "tool-call-start": CohereStreamDecoder._tool_start,
    "tool-call-delta": CohereStreamDecoder._tool_delta,
    "tool-call-end": CohereStreamDecoder._tool_end,
    "message-end": CohereStreamDecoder._message_end,
}
