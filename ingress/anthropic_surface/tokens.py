"""An offline estimate for ``POST /v1/messages/count_tokens``.

It is an estimate, not the provider's tokenizer: ≈ 4 characters a token over the system prompt, message
text, tool calls and results, and tool definitions (name, description, JSON schema), plus a flat
``IMAGE_TOKENS`` per image or PDF document (real cost depends on pixel size or page count).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

IMAGE_TOKENS = 1600  # ≈ a 1.15-megapixel image, the size Anthropic scales larger images down to


def count_tokens(body: Mapping[str, Any]) -> dict[str, int]:
    """``{"input_tokens": N}`` for an Anthropic messages (or count_tokens) body."""
    chars, media = _walk(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            more, images = _walk(message.get("content"))
            chars, media = chars + more, media + images
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping):
            chars += len(str(tool.get("name") or "")) + len(str(tool.get("description") or ""))
            if tool.get("input_schema") is not None:
                chars += len(orjson.dumps(tool["input_schema"], option=orjson.OPT_NON_STR_KEYS))
    text_tokens = (chars + 3) // 4  # the rounding of schemas.openai.estimate_tokens
    return {"input_tokens": text_tokens + media * IMAGE_TOKENS}


def _walk(content: Any) -> tuple[int, int]:
    """(characters of text, number of images and documents) in a content value."""
    if isinstance(content, str):
        return len(content), 0
    if not isinstance(content, list):
        return 0, 0
    chars = media = 0
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            chars += len(str(block.get("text") or ""))
        elif kind in ("image", "document"):
            source = block.get("source")
            if kind == "document" and isinstance(source, Mapping) and source.get("type") == "text":
                chars += len(str(source.get("data") or ""))
            else:
                media += 1
        elif kind == "tool_use":
            chars += len(str(block.get("name") or "")) + len(orjson.dumps(block.get("input") or {}))
        elif kind == "tool_result":
            more, images = _walk(block.get("content"))
            chars, media = chars + more, media + images
        elif kind == "thinking":
            chars += len(str(block.get("thinking") or ""))
    return chars, media
