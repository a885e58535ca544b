"""The `[[mock key=value flag]]` directive language: finding, stripping, parsing and merging directives."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson

MARKER = "[[mock"
_DIRECTIVE = re.compile(r"\[\[mock(?:\s+([^\]]*?))?\s*\]\]")

_INT_KEYS = frozenset(
    {"latency_ms", "chunk_delay_ms", "status", "retry_after_ms", "cut_after", "fail_times", "chunk_chars"}
)
_STR_KEYS = frozenset({"retry_after", "key", "reply_b64", "tool_call", "args_b64"})
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FLAGS = frozenset({"timeout"})

Items = dict[str, str]


class DirectiveError(ValueError):
    """A directive with an unknown key or a bad value."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The one tool call the mock answers with instead of text (`tool_call=NAME args_b64=B`)."""

    name: str
    arguments: str = "{}"  # a JSON object, compact: the exact string OpenAI/Cohere carry

    def args(self) -> dict[str, Any]:
        """The arguments as an object (Anthropic `input`, Gemini `args`)."""
        args: dict[str, Any] = orjson.loads(self.arguments)
        return args


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do differently for one request; every field defaults to normal behaviour."""

    latency_ms: int = 0
    chunk_delay_ms: int = 0
    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: int | None = None
    timeout: bool = False
    cut_after: int | None = None
    fail_times: int | None = None
    key: str = ""
    reply: str | None = None
    chunk_chars: int | None = None
    tool_call: ToolCall | None = None


def strip_directives(text: str, found: list[str]) -> str:
    """Text with every directive removed (outer whitespace trimmed); their bodies are appended to `found`."""
    if MARKER not in text:
        return text

    def _take(match: re.Match[str]) -> str:
        found.append(match.group(1) or "")
        return ""

    return _DIRECTIVE.sub(_take, text).strip()


def parse_items(spec: str) -> Items:
    """`key=value flag ...` (optionally wrapped in `[[mock ...]]`) as a dict; flags map to ``""``."""
    spec = spec.strip()
    if spec.startswith(MARKER) and spec.endswith("]]"):
        spec = spec[len(MARKER) : -2]
    items: Items = {}
    for token in spec.split():
        key, _, value = token.partition("=")
        if key not in _INT_KEYS and key not in _STR_KEYS and key not in _FLAGS:
            raise DirectiveError(f"unknown mock directive key {key!r}")
        items[key] = value
    return items


def merge(body_specs: list[str], header_spec: str | None) -> Items:
    """Body directives in order (later wins), then the `x-mock-fault` header on top (header wins)."""
    items: Items = {}
    for spec in body_specs:
        items.update(parse_items(spec))
    if header_spec is not None:
        items.update(parse_items(header_spec))
    return items


def _int(key: str, value: str, low: int, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DirectiveError(f"mock directive {key} needs an integer, got {value!r}") from None
    if number < low or (high is not None and number > high):
        raise DirectiveError(f"mock directive {key}={number} is out of range")
    return number


def _decode_b64(key: str, value: str) -> str:
    padded = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise DirectiveError(f"mock directive {key} is not base64 of UTF-8 text") from None


def _tool_call(name: str | None, args_b64: str | None) -> ToolCall | None:
    if name is None:
        if args_b64 is not None:
            raise DirectiveError("mock directive args_b64 needs tool_call=NAME")
        return None
    if not _TOOL_NAME.fullmatch(name):
        raise DirectiveError(f"mock directive tool_call needs a function name ([A-Za-z0-9_-]{{1,64}}), got {name!r}")
    if args_b64 is None:
        return ToolCall(name)
    try:
        args = orjson.loads(_decode_b64("args_b64", args_b64))
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise DirectiveError("mock directive args_b64 is not base64 of a JSON object")
    return ToolCall(name, orjson.dumps(args).decode())


def build_fault(items: Items) -> Fault:
    """Validate parsed items into a `Fault`."""
    get = items.get
    status = get("status")
    retry_after_ms = get("retry_after_ms")
    cut_after = get("cut_after")
    fail_times = get("fail_times")
    reply_b64 = get("reply_b64")
    chunk_chars = get("chunk_chars")
    timeout = get("timeout")
    if timeout not in (None, "", "1", "true"):
        raise DirectiveError("mock directive timeout is a flag")
    return Fault(
        latency_ms=_int("latency_ms", get("latency_ms", "0"), 0),
        chunk_delay_ms=_int("chunk_delay_ms", get("chunk_delay_ms", "0"), 0),
        status=None if status is None else _int("status", status, 400, 599),
        retry_after=get("retry_after"),
        retry_after_ms=None if retry_after_ms is None else _int("retry_after_ms", retry_after_ms, 0),
        timeout=timeout is not None,
        cut_after=None if cut_after is None else _int("cut_after", cut_after, 0),
        fail_times=None if fail_times is None else _int("fail_times", fail_times, 0),
        key=get("key", ""),
        reply=None if reply_b64 is None else _decode_b64("reply_b64", reply_b64),
        chunk_chars=None if chunk_chars is None else _int("chunk_chars", chunk_chars, 1),
        tool_call=_tool_call(get("tool_call"), get("args_b64")),
    )


def parse_fault(spec: str) -> Fault:
    """One directive string (the admin API and header syntax) as a `Fault`."""
    return build_fault(parse_items(spec))
