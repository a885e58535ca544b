"""Building OpenAI ``chat.completion.chunk`` dicts, for decoders of non-OpenAI streams."""

from __future__ import annotations

from typing import Any

from stages.providers.base import StreamState
from stages.providers.common import now, usage


class ChunkBuilder:
    """Emits chunks the way OpenAI orders them: per choice a first ``delta.role`` chunk, then content
    and tool-call deltas, then a ``finish_reason`` chunk; at the end one ``choices: []`` usage chunk."""

    def __init__(self, *, chunk_id: str, model: str) -> None:
        self.id = chunk_id
        self.model = model
        self.created = now()
        self._opened: set[int] = set()

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def open(self, index: int = 0) -> list[dict[str, Any]]:
        """The role chunk of choice ``index``, unless it was already sent."""
        if index in self._opened:
            return []
        self._opened.add(index)
        return [self._delta({"role": "assistant", "content": ""}, index, None)]

    def _delta(self, delta: dict[str, Any], index: int, finish_reason: str | None) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": delta, "finish_reason": finish_reason}])

    def delta(self, delta: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
        return [*self.open(index), self._delta(delta, index, None)]

    def text(self, text: str, index: int = 0) -> list[dict[str, Any]]:
        return self.delta({"content": text}, index) if text else []

    def tool_start(self, tool_index: int, call_id: str, name: str, index: int = 0) -> list[dict[str, Any]]:
        call = {
            "index": tool_index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self.delta({"tool_calls": [call]}, index)

    def tool_arguments(self, tool_index: int, fragment: str, index: int = 0) -> list[dict[str, Any]]:
        if not fragment:
            return []
        return self.delta({"tool_calls": [{"index": tool_index, "function": {"arguments": fragment}}]}, index)

    def finish(self, state: StreamState, reason: str, index: int = 0) -> list[dict[str, Any]]:
        state.finish_reason = reason
        return [*self.open(index), self._delta({}, index, reason)]

    def usage(self, state: StreamState) -> list[dict[str, Any]]:
        """The final usage chunk, if the provider reported any usage."""
        if state.prompt_tokens is None and state.completion_tokens is None:
            return []
        return [{**self._chunk([]), "usage": usage(state.prompt_tokens, state.completion_tokens)}]
