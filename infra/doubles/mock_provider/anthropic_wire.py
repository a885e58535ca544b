"""Anthropic Messages wire format: the `message` object, the named SSE event sequence and error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, WireError, text_of
from infra.doubles.mock_provider.directives import ToolCall
from infra.doubles.mock_provider.tool_choice import Function, UnknownFunction, forced_call

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_BLOCK_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def error_body(status: int, message: str) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}` as Anthropic sends it."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _event(name: bytes, obj: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _tool_use(reply: Reply, ident: int, stream: bool) -> dict[str, Any] | None:
    """The `tool_use` content block of a tool-call reply (`input: {}` at stream start), else None."""
    call = reply.tool_call
    if call is None:
        return None
    tool_id = f"toolu_mock{ident:016x}"
    return {"type": "tool_use", "id": tool_id, "name": call.name, "input": {} if stream else call.args()}


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str | list):
        return text_of(system)
    raise WireError("system: Input should be a valid string or a list of content blocks")


_CHOICE_TYPES = ("auto", "any", "tool", "none")


def _forced_call(body: dict[str, Any]) -> ToolCall | None:
    """The `tool_use` a `tool_choice` of type `any` (the first tool) or `tool` (the named one) forces,
    else None (`auto`, `none`, absent)."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _CHOICE_TYPES:
        raise WireError(f"tool_choice.type: Input should be {', '.join(repr(t) for t in _CHOICE_TYPES)}")
    if kind in ("auto", "none"):
        return None
    name = choice.get("name")
    if kind == "tool" and not isinstance(name, str):
        raise WireError("tool_choice.tool.name: Field required")
    tools = body.get("tools")
    # Client tools carry an `input_schema`; server tools (`web_search_...`) do not and are not answered.
    functions = [
        Function(t["name"], t.get("input_schema"))
        for t in (tools if isinstance(tools, list) else [])
        if isinstance(t, dict) and isinstance(t.get("name"), str) and "input_schema" in t
    ]
    if not functions:
        raise WireError("tool_choice: may only be specified while providing tools")
    try:
        return forced_call(functions, name if kind == "tool" else None)
    except UnknownFunction:
        raise WireError(f"tool_choice.name: Tool '{name}' not found in the provided tools") from None


class AnthropicWire:
    name = "anthropic"

    def parse(self, body: Any, route: Route) -> Prompt:
        if not isinstance(body, dict):
            raise WireError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise WireError("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise WireError("max_tokens: Input should be a positive integer")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("messages: Field required")
        system = _system_text(body.get("system"))
        texts = [system] if system else []
        last_user = ""
        for message in messages:
            if not isinstance(message, dict):
                raise WireError("messages: each message must be an object")
            text = text_of(message.get("content"))
            texts.append(text)
            if message.get("role") == "user":
                last_user = text
        return Prompt(
            model=model,
            texts=texts,
            last_user=last_user,
            stream=body.get("stream") is True,
            forced_call=_forced_call(body),
        )

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes:
        tool_use = _tool_use(reply, ident, stream=False)
        return orjson.dumps(
            {
                "id": f"msg_mock{ident:016x}",
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": [tool_use or {"type": "text", "text": reply.text}],
                "stop_reason": "end_turn" if tool_use is None else "tool_use",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": reply.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": reply.completion_tokens,
                },
            }
        )

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]:
        start = {
            "type": "message_start",
            "message": {
                "id": f"msg_mock{ident:016x}",
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": reply.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }
        tool_use = _tool_use(reply, ident, stream=True)
        if tool_use is None:
            block_start = _BLOCK_START
            delta_type, field, stop_reason = "text_delta", "text", "end_turn"
        else:
            block_start = _event(
                b"content_block_start", {"type": "content_block_start", "index": 0, "content_block": tool_use}
            )
            delta_type, field, stop_reason = "input_json_delta", "partial_json", "tool_use"
        events = [_event(b"message_start", start), block_start, _PING]
        pieces = reply.chunks()
        if cut_after is not None:
            pieces = pieces[:cut_after]
        events.extend(
            _event(
                b"content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": delta_type, field: piece}},
            )
            for piece in pieces
        )
        if cut_after is not None:
            return events
        events.append(_BLOCK_STOP)
        events.append(
            _event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": reply.completion_tokens},
                },
            )
        )
        events.append(_MESSAGE_STOP)
        return events

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)


WIRE = AnthropicWire()
