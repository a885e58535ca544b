"""Cohere v2 Chat API (``POST /v2/chat``): request, response and error translation.

Stream decoding lives in ``cohere_stream``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.config import ProviderConfig
from schemas.errors import GatewayError
from stages.providers.base import HttpCall, StreamDecoder
from stages.providers.cohere_stream import CohereStreamDecoder, finish_reason, token_counts
from stages.providers.common import (
    build_headers,
    classify,
    completion_id,
    content_parts,
    dump_arguments,
    error_message,
    forced_function,
    function_tools,
    max_output_tokens,
    now,
    stop_sequences,
    text_of,
    tool_call,
    usage,
)
from stages.providers.sse import SseStreams

# OpenAI sampling fields Cohere takes under the same name, and those it renames.
_SAME_NAME = ("temperature", "seed", "frequency_penalty", "presence_penalty")
_RENAMED = {"top_p": "p"}


def _part(part: Mapping[str, Any], *, images: bool) -> dict[str, Any] | None:
    """One OpenAI content part as a Cohere one; ``None`` for parts it cannot take (files, audio)."""
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image_url" and images:
        image = part.get("image_url")
        image = image if isinstance(image, Mapping) else {"url": image}
        if isinstance(image.get("url"), str):
            detail = {"detail": image["detail"]} if isinstance(image.get("detail"), str) else {}
            return {"type": "image_url", "image_url": {"url": image["url"], **detail}}
    return None


def _content(content: Any, *, images: bool = False) -> str | list[dict[str, Any]]:
    """A string stays a string; a list of parts becomes Cohere parts (images only where allowed)."""
    if isinstance(content, str):
        return content
    parts = [p for p in (_part(part, images=images) for part in content_parts(content)) if p is not None]
    return parts if any(p["type"] != "text" for p in parts) else text_of(parts)


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not arguments.strip():
            arguments = dump_arguments(arguments or None)
        out.append(tool_call(str(call.get("id")), str(function.get("name")), arguments))
    return out


def _message(message: Mapping[str, Any]) -> dict[str, Any] | None:
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": _content(content)}
    if role == "user":
        return {"role": "user", "content": _content(content, images=True)}
    if role == "tool":
        return {"role": "tool", "tool_call_id": message.get("tool_call_id"), "content": _content(content)}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = _content(content)
        if text:
            out["content"] = text
        calls = _tool_calls(message.get("tool_calls"))
        if calls:
            out["tool_calls"] = calls
        return out if len(out) > 1 else None  # Cohere rejects an empty assistant turn
    return None  # the legacy "function" role is dropped


def _tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Cohere ``tools`` and ``tool_choice``. Cohere cannot force one named tool: that becomes
    ``REQUIRED`` with only the named tool offered."""
    functions = function_tools(body)
    choice = body.get("tool_choice")
    forced = forced_function(choice)
    if forced and any(f.get("name") == forced for f in functions):
        functions = [f for f in functions if f.get("name") == forced]
    tools = [
        {
            "type": "function",
            "function": {
                "name": f.get("name"),
                **({"description": f["description"]} if f.get("description") else {}),
                "parameters": f.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for f in functions
    ]
    mode = "REQUIRED" if forced or choice == "required" else "NONE" if choice == "none" else None
    return tools, mode if tools else None


def _response_format(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    if value.get("type") == "json_object":
        return {"type": "json_object"}
    schema = value.get("json_schema")
    if value.get("type") == "json_schema" and isinstance(schema, Mapping):
        inner = schema.get("schema")
        return {"type": "json_object", **({"json_schema": inner} if isinstance(inner, Mapping) else {})}
    return None  # "text" is Cohere's default


def build_body(body: Mapping[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    messages = [m for m in (_message(msg) for msg in body.get("messages") or []) if m is not None]
    payload: dict[str, Any] = {"model": model, "messages": messages}
    tools, tool_choice = _tools(body)
    if tools:
        payload["tools"] = tools
    if tool_choice:
        payload["tool_choice"] = tool_choice
    for source, target in [*((k, k) for k in _SAME_NAME), *_RENAMED.items()]:
        value = body.get(source)
        if isinstance(value, int | float) and not isinstance(value, bool):
            payload[target] = value
    max_tokens = max_output_tokens(body)
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    stops = stop_sequences(body)
    if stops:
        payload["stop_sequences"] = stops
    response_format = _response_format(body.get("response_format"))
    if response_format:
        payload["response_format"] = response_format
    if stream:
        payload["stream"] = True
    return payload


class CohereAdapter(SseStreams):
    def to_provider_request(
        self,
        provider: ProviderConfig,
        model: str,
        body: Mapping[str, Any],
        *,
        stream: bool,
        api_key: str | None,
        credentials: Mapping[str, str] | None = None,
    ) -> HttpCall:
        headers = build_headers(provider, {"Authorization": f"Bearer {api_key}"} if api_key else {})
        url = provider.base_url.rstrip("/") + "/v2/chat"
        return HttpCall("POST", url, headers, build_body(body, model, stream=stream))

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]:
        reason = finish_reason(data.get("finish_reason"))  # raises on ERROR / TIMEOUT
        reply = data.get("message")
        reply = reply if isinstance(reply, Mapping) else {}
        text = text_of(reply.get("content"))  # tool_plan, thinking and citations are dropped
        calls = _tool_calls(reply.get("tool_calls"))
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        response: dict[str, Any] = {
            "id": completion_id(data.get("id"), request_id),
            "object": "chat.completion",
            "created": now(),
            "model": model,  # Cohere does not report the model
            "choices": [{"index": 0, "message": message, "finish_reason": reason or "stop"}],
        }
        counts = token_counts(data.get("usage"))
        if counts is not None:
            response["usage"] = usage(*counts)
        return response

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder:
        return CohereStreamDecoder(model=model, request_id=request_id)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return classify(status, headers, error_message(body))  # Cohere sends {"id"?, "message"}
