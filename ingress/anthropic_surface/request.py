"""Anthropic Messages request → canonical OpenAI Chat Completions body, or a clear 400.

Mapping: ``system`` → one system message (text parts keep ``cache_control``); user text/image/document
blocks → user content parts (base64 images as data URLs, base64 PDFs as ``file`` parts, plain-text
documents as text); ``tool_result`` blocks → ``tool`` messages placed first, in order, before the user's
other blocks (``is_error`` prefixes the text with ``Error: ``; images in a tool result go into the user
message that follows, as OpenAI tool messages carry text only); assistant ``tool_use`` blocks →
``tool_calls``; thinking blocks are dropped. ``top_k`` and unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingress.anthropic_surface.models import (
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    MessagesRequest,
    PlainTextSource,
    SystemBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from ingress.anthropic_surface.validation import validate
from schemas.errors import InvalidRequest


def parse_messages_request(raw: bytes) -> tuple[dict[str, Any], MessagesRequest]:
    """The canonical OpenAI body for an Anthropic ``/v1/messages`` body, and its validated view."""
    _, request = validate(raw, MessagesRequest)
    return to_canonical(request), request


def parse_count_tokens_request(raw: bytes) -> tuple[dict[str, Any], CountTokensRequest]:
    """The JSON body as sent and its validated view, for ``/v1/messages/count_tokens``."""
    return validate(raw, CountTokensRequest)


def to_canonical(request: MessagesRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request)}
    body["max_tokens"] = request.max_tokens
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in request.tools
        ]
        body.update(_tool_choice(request))
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _tool_choice(request: MessagesRequest) -> dict[str, Any]:
    choice = request.tool_choice
    if choice is None:
        return {}
    out: dict[str, Any] = {}
    if choice.type == "tool":
        if choice.name not in {tool.name for tool in request.tools or []}:
            raise InvalidRequest(
                f"Invalid value for 'tool_choice.name': '{choice.name}' is not the name of one of the tools.",
                param="tool_choice.name",
                code="invalid_value",
            )
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
    if choice.disable_parallel_tool_use and choice.type != "none":
        out["parallel_tool_calls"] = False
    return out


def _messages(request: MessagesRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(request.system, str) and request.system:
        out.append({"role": "system", "content": request.system})
    elif isinstance(request.system, list) and request.system:
        out.append({"role": "system", "content": [_text_part(block) for block in request.system]})
    for index, message in enumerate(request.messages):
        if message.role == "user":
            out.extend(_user_turn(message, index))
        else:
            out.append(_assistant_turn(message, index))
    return out


def _user_turn(message: Message, index: int) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for position, block in enumerate(message.content):
        if isinstance(block, ToolResultBlock):
            text, images = _tool_result(block)
            tools.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
            parts.extend(images)
        elif isinstance(block, TextBlock):
            parts.append(_text_part(block))
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, DocumentBlock):
            parts.append(_document_part(block))
        elif not isinstance(block, ThinkingBlock):
            raise _misplaced(block.type, "user", index, position)
    return tools + ([{"role": "user", "content": parts}] if parts or not tools else [])


def _assistant_turn(message: Message, index: int) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for position, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append({"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}})
        elif not isinstance(block, ThinkingBlock):
            raise _misplaced(block.type, "assistant", index, position)
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _misplaced(kind: str, role: str, index: int, position: int) -> InvalidRequest:
    param = f"messages.{index}.content.{position}.type"
    return InvalidRequest(
        f"Invalid value for '{param}': a '{kind}' content block is not allowed in a {role} message.",
        param=param,
        code="invalid_value",
    )


def _tool_result(block: ToolResultBlock) -> tuple[str, list[dict[str, Any]]]:
    content = block.content
    images: list[dict[str, Any]] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = "\n".join(part.text for part in content if isinstance(part, TextBlock))
        images = [_image_part(part) for part in content if isinstance(part, ImageBlock)]
    return (f"Error: {text}" if block.is_error else text), images


def _text_part(block: TextBlock | SystemBlock) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": block.text}
    if block.cache_control is not None:
        part["cache_control"] = block.cache_control
    return part


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    url = source.url if source.type == "url" else f"data:{source.media_type};base64,{source.data}"
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if block.cache_control is not None:
        part["cache_control"] = block.cache_control
    return part


def _document_part(block: DocumentBlock) -> dict[str, Any]:
    source = block.source
    part: dict[str, Any]
    if isinstance(source, PlainTextSource):
        part = {"type": "text", "text": f"{block.title}\n\n{source.data}" if block.title else source.data}
    else:
        data_url = f"data:{source.media_type};base64,{source.data}"
        part = {"type": "file", "file": {"filename": block.title or "document.pdf", "file_data": data_url}}
    if block.cache_control is not None:
        part["cache_control"] = block.cache_control
    return part
