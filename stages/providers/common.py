"""Pieces every adapter shares: reading the canonical request, ids and clocks, and provider errors."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.config import ProviderConfig
from schemas.errors import GatewayError, ProviderError
from stages.providers.base import error_for_status

MAX_RAW_ERROR_CHARS = 500

# ---------------------------------------------------------------------------------------------------
# Reading the canonical (OpenAI) request


@dataclass(frozen=True)
class DataUrl:
    media_type: str
    data: str  # base64


def parse_data_url(url: str) -> DataUrl | None:
    """``data:[<media type>][;base64],<data>`` → media type and base64 data; ``None`` if not a data URL."""
    if not url.startswith("data:") or "," not in url:
        return None
    header, payload = url[5:].split(",", 1)
    params = header.split(";")
    media_type = params[0] or "text/plain"
    if "base64" in params[1:]:
        return DataUrl(media_type, payload)
    raw = urllib.parse.unquote_to_bytes(payload)
    return DataUrl(media_type, base64.b64encode(raw).decode("ascii"))


_MEDIA_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}


def guess_media_type(url: str, default: str = "image/jpeg") -> str:
    """The media type a URL's file extension implies (a fixed table: no system lookup)."""
    path = urllib.parse.urlsplit(url).path
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return _MEDIA_BY_EXTENSION.get(extension, default)


def text_of(content: Any) -> str:
    """Text of a message's content: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def content_parts(content: Any) -> list[Mapping[str, Any]]:
    """A message's content as a list of OpenAI content parts (a string becomes one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [p for p in content if isinstance(p, Mapping)]
    return []


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """An OpenAI tool call's ``arguments`` (a JSON string) as an object; ``{}`` when not one."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str) and arguments.strip():
        try:
            value = json.loads(arguments)
        except ValueError:
            return {}
        if isinstance(value, dict):
            return value
    return {}


def dump_arguments(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def stop_sequences(body: Mapping[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list):
        return []
    return [s for s in stop if isinstance(s, str) and s]


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def function_tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``function`` objects of the request's ``tools`` (other tool types are dropped)."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        t["function"]
        for t in tools
        if isinstance(t, Mapping)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), Mapping)
    ]


def forced_function(tool_choice: Any) -> str | None:
    """The function name of ``{"type": "function", "function": {"name": ...}}``, else ``None``."""
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def build_headers(provider: ProviderConfig, auth: Mapping[str, str]) -> dict[str, str]:
    """Auth headers, then the provider's configured headers (which may override them)."""
    headers = dict(auth)
    headers.update(provider.headers)
    return headers


def number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------------------------------
# Responses


def now() -> int:
    return int(time.time())


def completion_id(provider_id: Any, request_id: str) -> str:
    """The provider's response id when it gave one, else one derived from the gateway's request id."""
    return provider_id if isinstance(provider_id, str) and provider_id else f"chatcmpl-{request_id}"


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def usage(prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, int]:
    prompt, completion = prompt_tokens or 0, completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# ---------------------------------------------------------------------------------------------------
# Errors

_CONTEXT_OVERFLOW = re.compile(
    r"context[ _]length|context window|prompt is too long|too many tokens|"
    r"exceeds the maximum number of tokens|input token count|maximum context",
    re.IGNORECASE,
)


def error_message(body: bytes) -> str:
    """The message of ``{"error": {"message"}}`` (OpenAI, Anthropic, Gemini), ``{"error": "..."}`` or
    ``{"message": "..."}`` (some OpenAI-compatible servers); else the raw text, truncated."""
    text = body.decode("utf-8", errors="replace")
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(data.get("message"), str):
            return str(data["message"])
    text = text.strip()
    return text[:MAX_RAW_ERROR_CHARS] if text else "(empty body)"


def classify(status: int, headers: Mapping[str, str], message: str) -> GatewayError:
    """``error_for_status``, plus ``code="context_length_exceeded"`` on a 400 that says so."""
    error = error_for_status(status, message, headers)
    if status == 400 and _CONTEXT_OVERFLOW.search(message):
        error.code = "context_length_exceeded"
    return error


def load_event_json(data: str) -> dict[str, Any]:
    """One SSE ``data`` payload as a JSON object; anything else is a provider fault."""
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(
            f"provider sent an unreadable stream event: {data[:200]!r}",
            code="provider_bad_stream",
            retryable=False,
        )
    return value


def in_band_error(error: Any, status: int) -> GatewayError:
    """An error the provider sent inside a stream, classified as if it had come with ``status``."""
    message = error.get("message") if isinstance(error, Mapping) else error
    return classify(status, {}, str(message) if message else "stream error")
