"""Anthropic Messages API (``POST /v1/messages``): request, response and error translation.

Stream decoding lives in ``anthropic_stream``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.config import AnthropicProvider, ProviderConfig
from schemas.errors import GatewayError
from stages.providers.anthropic_stream import AnthropicStreamDecoder, finish_reason, prompt_tokens
from stages.providers.base import HttpCall, StreamDecoder
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
    number,
    parse_arguments,
    parse_data_url,
    stop_sequences,
    tool_call,
    usage,
)
from stages.providers.sse import SseStreams

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


def _block(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """One OpenAI content part as an Anthropic content block; ``None`` for parts it cannot take."""
    kind = part.get("type")
    block: dict[str, Any] | None = None
    if kind == "text" and part.get("text"):
        block = {"type": "text", "text": part["text"]}
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str):
            data = parse_data_url(url)
            source = (
                {"type": "base64", "media_type": data.media_type, "data": data.data}
                if data
                else {"type": "url", "url": url}
            )
            block = {"type": "image", "source": source}
    elif kind == "file":
        file = part.get("file")
        data = parse_data_url(str(file.get("file_data", ""))) if isinstance(file, Mapping) else None
        if data and data.media_type == "application/pdf":
            block = {
                "type": "document",
                "source": {"type": "base64", "media_type": data.media_type, "data": data.data},
            }
    if block is not None and isinstance(part.get("cache_control"), Mapping):
        block["cache_control"] = dict(part["cache_control"])
    return block


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in (_block(p) for p in content_parts(content)) if b is not None]


def _turn(message: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    role = message.get("role")
    if role == "user":
        return "user", _blocks(message.get("content"))
    if role == "assistant":
        blocks = _blocks(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": parse_arguments(function.get("arguments")),
                }
            )
        return "assistant", blocks
    if role == "tool":
        content = message.get("content")
        result = content if isinstance(content, str) else _blocks(content)
        return "user", [
            {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}
        ]
    return None  # the legacy "function" role is dropped


def translate_messages(
    messages: list[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (Anthropic ``messages``, ``system`` blocks). System and developer messages
    go to ``system``; consecutive turns of one role (tool results included) merge into one turn."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system.extend(b for b in _blocks(message.get("content")) if b["type"] == "text")
            continue
        turn = _turn(message)
        if turn is None or not turn[1]:
            continue
        role, blocks = turn
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for entry in turns:  # a lone text block reads best as a plain string
        content = entry["content"]
        if len(content) == 1 and content[0]["type"] == "text" and "cache_control" not in content[0]:
            entry["content"] = content[0]["text"]
    return turns, system


def _tool_choice(body: Mapping[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    name = forced_function(choice)
    result: dict[str, Any] | None = {"type": "tool", "name": name} if name else None
    if choice in ("auto", "none"):
        result = {"type": choice}
    elif choice == "required":
        result = {"type": "any"}
    if body.get("parallel_tool_calls") is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def build_body(
    body: Mapping[str, Any], model: str, default_max_tokens: int, *, stream: bool
) -> dict[str, Any]:
    messages, system = translate_messages(list(body.get("messages") or []))
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_output_tokens(body) or default_max_tokens,
    }
    if system:
        plain = len(system) == 1 and "cache_control" not in system[0]
        payload["system"] = system[0]["text"] if plain else system
    stops = [s for s in stop_sequences(body) if s.strip()]  # Anthropic rejects whitespace-only ones
    if stops:
        payload["stop_sequences"] = stops
    if isinstance(body.get("temperature"), int | float):
        payload["temperature"] = min(float(body["temperature"]), 1.0)  # Anthropic's range is 0..1
    if isinstance(body.get("top_p"), int | float):
        payload["top_p"] = body["top_p"]
    if isinstance(body.get("user"), str):
        payload["metadata"] = {"user_id": body["user"]}
    tools = function_tools(body)
    if tools:
        payload["tools"] = [
            {
                "name": f.get("name"),
                **({"description": f["description"]} if f.get("description") else {}),
                "input_schema": f.get("parameters") or {"type": "object", "properties": {}},
            }
            for f in tools
        ]
        choice = _tool_choice(body)
        if choice:
            payload["tool_choice"] = choice
    if stream:
        payload["stream"] = True
    return payload


class AnthropicAdapter(SseStreams):
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
        version, max_tokens = DEFAULT_VERSION, DEFAULT_MAX_TOKENS
        if isinstance(provider, AnthropicProvider):
            version, max_tokens = provider.anthropic_version, provider.default_max_tokens
        auth = {"x-api-key": api_key} if api_key else {}
        headers = build_headers(provider, {**auth, "anthropic-version": version})
        url = provider.base_url.rstrip("/") + "/v1/messages"
        return HttpCall("POST", url, headers, build_body(body, model, max_tokens, stream=stream))

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]:
        blocks = [b for b in data.get("content") or [] if isinstance(b, Mapping)]
        text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        calls = [
            tool_call(str(b.get("id")), str(b.get("name")), dump_arguments(b.get("input")))
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        response: dict[str, Any] = {
            "id": completion_id(data.get("id"), request_id),
            "object": "chat.completion",
            "created": now(),
            "model": data.get("model") or model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason(data.get("stop_reason"))}
            ],
        }
        reported = data.get("usage")
        if isinstance(reported, Mapping):
            response["usage"] = usage(prompt_tokens(reported), number(reported.get("output_tokens")))
        return response

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder:
        return AnthropicStreamDecoder(model=model, request_id=request_id)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return classify(status, headers, error_message(body))
