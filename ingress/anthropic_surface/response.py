"""Canonical ``chat.completion`` → Anthropic ``message`` object.

``finish_reason`` → ``stop_reason``: stop → end_turn (a matched stop sequence cannot be told apart, so
``stop_sequence`` is always null), length → max_tokens, tool_calls/function_call → tool_use,
content_filter → refusal (Anthropic's documented value for a declined answer). A turn that carries
tool calls reports tool_use whatever the provider said, as Anthropic clients run tools on it.
Usage: ``prompt_tokens`` minus cached ones → input_tokens, ``prompt_tokens_details.cached_tokens`` →
cache_read_input_tokens, ``completion_tokens`` → output_tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

_STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any, *, used_tools: bool = False) -> str:
    reason = _STOP_REASON.get(str(finish_reason), "end_turn")
    return "tool_use" if used_tools and reason == "end_turn" else reason


def message_id(completion_id: Any) -> str:
    """``msg_…`` from the canonical id (kept when it already is one, as from an Anthropic provider)."""
    if not isinstance(completion_id, str) or not completion_id:
        return f"msg_{uuid.uuid4().hex}"
    if completion_id.startswith("msg_"):
        return completion_id
    return "msg_" + completion_id.removeprefix("chatcmpl-")


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON ``arguments`` as the object Anthropic's ``input`` must be. Arguments that are
    not a JSON object are kept, not dropped, under ``_raw_arguments``."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def usage_block(usage: Any) -> dict[str, int]:
    """OpenAI ``usage`` → Anthropic ``usage`` (zeros when unknown)."""
    usage = usage if isinstance(usage, Mapping) else {}
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    out = {"input_tokens": max(prompt - cached, 0), "output_tokens": _int(usage.get("completion_tokens"))}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


def to_messages_response(completion: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The Anthropic ``message`` for a canonical completion; ``model`` is the name the client asked for."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    content: list[dict[str, Any]] = []
    text = _text(message.get("content")) or str(message.get("refusal") or "")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    used_tools = any(block["type"] == "tool_use" for block in content)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), used_tools=used_tools),
        "stop_sequence": None,
        "usage": usage_block(completion.get("usage")),
    }
