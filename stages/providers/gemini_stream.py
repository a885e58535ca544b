"""Gemini ``streamGenerateContent?alt=sse`` → OpenAI chunks, and the candidate reading that the
non-streaming response shares.

Each SSE event is a whole ``GenerateContentResponse``: text parts become content deltas, each
``functionCall`` part (sent whole) a tool-call start plus one arguments delta, ``usageMetadata``
(cumulative) the usage; the chunk carrying a ``finishReason`` ends the candidate, and the stream once
every candidate seen has ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stages.providers.base import SseEvent, StreamState
from stages.providers.chunks import ChunkBuilder
from stages.providers.common import completion_id, dump_arguments, in_band_error, load_event_json, number

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


@dataclass(frozen=True)
class FunctionCall:
    id: str | None
    name: str
    arguments: str


def finish_reason(reason: Any, *, called_tools: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    mapped = _FINISH.get(str(reason), "stop")
    return "tool_calls" if called_tools and mapped == "stop" else mapped


def read_candidate(candidate: Mapping[str, Any]) -> tuple[str, list[FunctionCall]]:
    """A candidate's answer text (thought summaries left out) and its function calls."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    text: list[str] = []
    calls: list[FunctionCall] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
            calls.append(FunctionCall(call_id, str(call.get("name")), dump_arguments(call.get("args"))))
    return "".join(text), calls


def usage_counts(meta: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens; thinking tokens count as completion tokens, as OpenAI counts them."""
    if not isinstance(meta, Mapping) or not ({"promptTokenCount", "candidatesTokenCount"} & meta.keys()):
        return None
    prompt = number(meta.get("promptTokenCount")) + number(meta.get("toolUsePromptTokenCount"))
    return prompt, number(meta.get("candidatesTokenCount")) + number(meta.get("thoughtsTokenCount"))


def call_id(request_id: str, n: int) -> str:
    """An OpenAI tool-call id for a Gemini function call that came without one."""
    return f"call_{request_id.replace('-', '')[-16:]}_{n}"


def error_status(error: Any) -> int:
    code = error.get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500


class GeminiStreamDecoder:
    def __init__(self, *, model: str, request_id: str) -> None:
        self.state = StreamState()
        self._request_id = request_id
        self._chunks = ChunkBuilder(chunk_id=completion_id(None, request_id), model=model)
        self._started = False
        self._tools: dict[int, int] = {}  # candidate index → tool calls emitted so far
        self._calls = 0
        self._unfinished: set[int] = set()

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        data = load_event_json(event.data)
        if data.get("error"):
            raise in_band_error(data["error"], error_status(data["error"]))
        if not self._started:
            self._started = True
            self._chunks.id = completion_id(data.get("responseId"), self._request_id)
            self._chunks.model = str(data.get("modelVersion") or self._chunks.model)
        counts = usage_counts(data.get("usageMetadata"))
        if counts is not None:
            self.state.prompt_tokens, self.state.completion_tokens = counts
        out: list[dict[str, Any]] = []
        ended = False
        candidates = data.get("candidates")
        for candidate in candidates if isinstance(candidates, list) else []:
            if isinstance(candidate, Mapping):
                chunks, candidate_ended = self._candidate(candidate)
                out += chunks
                ended = ended or candidate_ended
        feedback = data.get("promptFeedback")
        if not candidates and isinstance(feedback, Mapping) and feedback.get("blockReason"):
            out += self._chunks.finish(self.state, "content_filter")
            ended = True
        if ended and not self._unfinished:
            self.state.finished = True
            out += self._chunks.usage(self.state)
        return out

    def _candidate(self, candidate: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        index = number(candidate.get("index"))
        self._unfinished.add(index)
        text, calls = read_candidate(candidate)
        out = self._chunks.text(text, index)
        for call in calls:
            tool_index = self._tools.get(index, 0)
            self._tools[index] = tool_index + 1
            out += self._chunks.tool_start(
                tool_index, call.id or call_id(self._request_id, self._calls), call.name, index
            )
            out += self._chunks.tool_arguments(tool_index, call.arguments, index)
            self._calls += 1
        reason = finish_reason(candidate.get("finishReason"), called_tools=index in self._tools)
        if reason is None:
            return out, False
        self._unfinished.discard(index)
        return out + self._chunks.finish(self.state, reason, index), True
