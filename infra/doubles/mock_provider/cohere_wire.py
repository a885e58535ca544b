"""Cohere v2 Chat wire format: the chat response, the named SSE event sequence and error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, WireError, text_of
from infra.doubles.mock_provider.directives import ToolCall
from infra.doubles.mock_provider.tool_choice import forced_call, function_tools

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_CONTENT_START = (
    b'event: content-start\ndata: {"type":"content-start","index":0,'
    b'"delta":{"message":{"content":{"type":"text","text":""}}}}\n\n'
)
_CONTENT_END = b'event: content-end\ndata: {"type":"content-end","index":0}\n\n'
_TOOL_CALL_END = b'event: tool-call-end\ndata: {"type":"tool-call-end","index":0}\n\n'


def error_body(status: int, message: str) -> bytes:
    """`{"id", "message"}` as Cohere sends it, whatever the status."""
    return orjson.dumps({"id": "mock-error", "message": message})


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **obj}) + b"\n\n"


def _usage(reply: Reply) -> dict[str, Any]:
    counts = {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens}
    return {"billed_units": counts, "tokens": counts}


def _response_id(ident: int) -> str:
    return f"00000000-0000-4000-8000-{ident:012x}"


def _tool_call(reply: Reply, ident: int, stream: bool) -> dict[str, Any] | None:
    """The reply's tool call as Cohere sends it (arguments `""` in `tool-call-start`), else None."""
    call = reply.tool_call
    if call is None:
        return None
    function = {"name": call.name, "arguments": "" if stream else call.arguments}
    return {"id": f"{call.name}_mock{ident:012x}", "type": "function", "function": function}


def _forced_call(body: dict[str, Any]) -> ToolCall | None:
    """The tool call `tool_choice: "REQUIRED"` forces (of the first tool; Cohere cannot name one),
    else None (`NONE`, absent)."""
    choice = body.get("tool_choice")
    if choice is None or choice == "NONE":
        return None
    if choice != "REQUIRED":
        raise WireError("invalid request: tool_choice must be one of REQUIRED, NONE.")
    functions = function_tools(body.get("tools"))
    if not functions:
        raise WireError("invalid request: tool_choice REQUIRED needs at least one tool in tools.")
    return forced_call(functions)


class CohereWire:
    name = "cohere"

    def parse(self, body: Any, route: Route) -> Prompt:
        if not isinstance(body, dict):
            raise WireError("invalid request: the request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("invalid request: model must be a non-empty string.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("invalid request: messages must be a non-empty list.")
        texts: list[str] = []
        last_user = ""
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise WireError("invalid request: each message needs a role of system, user, assistant or tool.")
            text = text_of(message.get("content"))
            texts.append(text)
            if message["role"] == "user":
                last_user = text
        return Prompt(
            model=model,
            texts=texts,
            last_user=last_user,
            stream=body.get("stream") is True,
            forced_call=_forced_call(body),
        )

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes:
        call = _tool_call(reply, ident, stream=False)
        message: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": reply.text}]}
        if call is not None:
            message = {"role": "assistant", "tool_plan": "", "tool_calls": [call]}
        return orjson.dumps(
            {
                "id": _response_id(ident),
                "finish_reason": "COMPLETE" if call is None else "TOOL_CALL",
                "message": message,
                "usage": _usage(reply),
            }
        )

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]:
        start = {
            "id": _response_id(ident),
            "delta": {
                "message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
            },
        }
        pieces = reply.chunks()
        if cut_after is not None:
            pieces = pieces[:cut_after]
        call = _tool_call(reply, ident, stream=True)
        if call is None:
            events = [_event("message-start", start), _CONTENT_START]
            events.extend(
                _event("content-delta", {"index": 0, "delta": {"message": {"content": {"text": piece}}}})
                for piece in pieces
            )
            end, finish = _CONTENT_END, "COMPLETE"
        else:
            tool_start = {"index": 0, "delta": {"message": {"tool_calls": call}}}
            events = [_event("message-start", start), _event("tool-call-start", tool_start)]
            events.extend(
                _event(
                    "tool-call-delta",
                    {"index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}},
                )
                for piece in pieces
            )
            end, finish = _TOOL_CALL_END, "TOOL_CALL"
        if cut_after is not None:
            return events
        events.append(end)
        events.append(_event("message-end", {"delta": {"finish_reason": finish, "usage": _usage(reply)}}))
        return events

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)


WIRE = CohereWire()
