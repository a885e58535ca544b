"""The texts of a request that input guardrails scan, each tagged with where it came from.

A chat request's messages are scanned by role: ``user``, ``system``/``developer``, ``assistant``, and
``tool`` for tool output (role ``tool`` or the legacy ``function``, and ``tool_result`` content parts,
Anthropic-style, inside any message). An embeddings request's ``input`` counts as ``user`` text.
Content parts other than text (images, audio) carry nothing to scan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any, Literal

Source = Literal["user", "system", "assistant", "tool"]



def default_roles() -> list[Source]:
    """Whose text input guardrails scan unless told otherwise: the caller's and tools' (the system
    prompt is the application's own)."""
    return ["user", "tool"]


_ROLE_SOURCE: dict[str, Source] = {
    "user": "user",
    "system": "system",
    "developer": "system",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


def _part_texts(part: Any) -> Iterator[tuple[bool, str]]:
    """(is tool output, text) of one content part."""
    if not isinstance(part, Mapping):
        return
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if isinstance(text, str) and text:
            yield False, text
    elif kind in ("tool_result", "function_result", "function_call_output"):
        inner = part.get("content", part.get("output"))
        if isinstance(inner, str):
            if inner:
                yield True, inner
        elif isinstance(inner, list):
            for sub in inner:
                for _, text in _part_texts(sub):
                    yield True, text


def request_texts(request: Mapping[str, Any], roles: Collection[str]) -> Iterator[tuple[Source, str]]:
    """Every non-empty text of ``request`` whose source is in ``roles``, in request order."""
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            source = _ROLE_SOURCE.get(str(message.get("role", "")))
            if source is None:
                continue
            content = message.get("content")
            if isinstance(content, str):
                if content and source in roles:
                    yield source, content
            elif isinstance(content, list):
                for part in content:
                    for is_tool, text in _part_texts(part):
                        part_source: Source = "tool" if is_tool else source
                        if part_source in roles:
                            yield part_source, text
    if "user" in roles:
        value = request.get("input")
        if isinstance(value, str) and value:
            yield "user", value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and item:
                    yield "user", item
