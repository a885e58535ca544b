"""Canonical ``chat.completion.chunk`` stream → Anthropic Messages stream events.

The sequence is Anthropic's: ``message_start``; for each content block in order ``content_block_start``,
``content_block_delta``… (``text_delta`` / ``input_json_delta``), ``content_block_stop`` (one block is
open at a time: a text block closes before a tool_use block opens); then ``message_delta`` (stop reason,
cumulative usage) and ``message_stop``. Usage may arrive on any chunk (or a final ``choices: []`` chunk)
and is reported by ``finish``. Tool-call arguments are streamed as they come; a fragment for a tool call
whose block is already closed (providers that interleave calls) cannot be sent and is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from ingress.anthropic_surface.response import stop_reason, usage_block

Event = tuple[str, dict[str, Any]]


def encode_sse(event: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def encode_events(events: list[Event]) -> bytes:
    return b"".join(encode_sse(name, data) for name, data in events)


def ping_event() -> bytes:
    """A keep-alive event, as Anthropic sends; clients ignore it."""
    return encode_sse("ping", {"type": "ping"})


class MessagesStreamEncoder:
    def __init__(self, model: str, message_id: str, *, input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self.finished = False
        self._input_tokens = input_tokens  # as reported in message_start (an estimate, or 0)
        self._usage: dict[str, Any] = {}
        self._finish_reason: Any = None
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # ("text", -1) or ("tool", OpenAI tool-call index)
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → Anthropic block index

    def start(self) -> list[Event]:
        """``message_start``, once (``feed`` and ``finish`` call it when needed)."""
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        if self.finished:
            return []
        events = self.start()
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = dict(chunk["usage"])
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                for key in ("content", "refusal"):
                    if isinstance(delta.get(key), str) and delta[key]:
                        events += self._text(delta[key])
                for call in delta.get("tool_calls") or []:
                    if isinstance(call, Mapping):
                        events += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def finish(self, usage: Mapping[str, Any] | None = None) -> list[Event]:
        """Close the open block and end the message; ``usage`` (OpenAI shape) overrides any seen."""
        if self.finished:
            return []
        events = self.start() + self._close()
        self.finished = True
        if usage is not None:
            self._usage = dict(usage)
        reported = usage_block(self._usage)  # cumulative; input tokens only once known
        if not reported["input_tokens"]:
            del reported["input_tokens"]
        reason = stop_reason(self._finish_reason, used_tools=bool(self._tools))
        events.append(
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": reported},
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open[0] != "text":
            events += self._close()
            events.append(self._block_start({"type": "text", "text": ""}))
            self._open = ("text", -1)
        delta = {"type": "text_delta", "text": text}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": self._index(), "delta": delta}))
        return events

    def _tool_call(self, call: Mapping[str, Any]) -> list[Event]:
        position = call.get("index")
        position = position if isinstance(position, int) else len(self._tools)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        events: list[Event] = []
        if position not in self._tools:
            events += self._close()
            self._tools[position] = self._next_index
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            events.append(self._block_start(block))
            self._open = ("tool", position)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and self._open == ("tool", position):
            delta = {"type": "input_json_delta", "partial_json": arguments}
            data = {"type": "content_block_delta", "index": self._tools[position], "delta": delta}
            events.append(("content_block_delta", data))
        return events

    def _block_start(self, block: dict[str, Any]) -> Event:
        index = self._next_index
        self._next_index += 1
        return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}

    def _index(self) -> int:
        return self._next_index - 1  # the open block is always the last one started

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index()})]
