"""Amazon Bedrock Converse wire format: the Converse response, ConverseStream's binary AWS event-stream
frames and Bedrock's error bodies (`{"message"}`, the type in `x-amzn-ErrorType` and `__type`)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

from infra.doubles.mock_provider.asgi import Headers
from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, WireError
from infra.doubles.mock_provider.directives import ToolCall
from infra.doubles.mock_provider.tool_choice import Function, UnknownFunction, forced_call

EVENT_STREAM = b"application/vnd.amazon.eventstream"
_ROLES = frozenset({"user", "assistant"})
_ERROR_TYPES: dict[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_type(status: int) -> str:
    """The Bedrock error type answered with HTTP `status`."""
    return _ERROR_TYPES.get(status, "InternalServerException" if status >= 500 else "ValidationException")


def error_body(status: int, message: str) -> bytes:
    """`{"message"}` as Bedrock sends it, plus `__type` (the type also goes in `x-amzn-ErrorType`)."""
    return orjson.dumps({"message": message, "__type": error_type(status)})


def _string_header(name: bytes, value: bytes) -> bytes:
    """One event-stream header of type 7 (string): name length, name, type, value length, value."""
    return bytes([len(name)]) + name + b"\x07" + struct.pack(">H", len(value)) + value


_FIXED_HEADERS = _string_header(b":content-type", b"application/json") + _string_header(b":message-type", b"event")


def frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream `event` message: prelude (total length, headers length, CRC32), headers,
    JSON payload, message CRC32."""
    headers = _string_header(b":event-type", event_type.encode()) + _FIXED_HEADERS
    body = orjson.dumps(payload)
    prelude = struct.pack(">II", 16 + len(headers) + len(body), len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _blocks_text(content: Any, where: str, texts: list[str]) -> str:
    """The text of a content-block list (joined); `toolResult` texts go to `texts` (prompt tokens) only."""
    if not isinstance(content, list):
        raise WireError(f"Malformed input request: {where}.content must be a list of content blocks.")
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            raise WireError(f"Malformed input request: {where}.content blocks must be objects.")
        if "text" in block:
            if not isinstance(block["text"], str):
                raise WireError(f"Malformed input request: {where}.content text must be a string.")
            parts.append(block["text"])
        result = block.get("toolResult")
        if isinstance(result, dict) and isinstance(result.get("content"), list):
            inner = "".join(
                b["text"] for b in result["content"] if isinstance(b, dict) and isinstance(b.get("text"), str)
            )
            if inner:
                texts.append(inner)
    return "".join(parts)


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if not isinstance(system, list):
        raise WireError("Malformed input request: system must be a list of system content blocks.")
    return "".join(b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str))


def _check_config(body: dict[str, Any]) -> None:
    inference = body.get("inferenceConfig")
    if inference is not None:
        if not isinstance(inference, dict):
            raise WireError("Malformed input request: inferenceConfig must be an object.")
        max_tokens = inference.get("maxTokens")
        bad = isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        if max_tokens is not None and bad:
            raise WireError("Malformed input request: inferenceConfig.maxTokens must be a positive integer.")
    tools = body.get("toolConfig")
    if tools is not None and (not isinstance(tools, dict) or not isinstance(tools.get("tools"), list)):
        raise WireError("Malformed input request: toolConfig.tools must be a list.")


def _tool_specs(tools: list[Any]) -> list[Function]:
    functions: list[Function] = []
    for tool in tools:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None  # (not `cachePoint` entries)
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            schema = spec.get("inputSchema")
            functions.append(Function(spec["name"], schema.get("json") if isinstance(schema, dict) else None))
    return functions


def _forced_call(body: dict[str, Any]) -> ToolCall | None:
    """The `toolUse` that `toolConfig.toolChoice` `{"any": {}}` (the first tool) or `{"tool": {"name"}}`
    forces, else None (`{"auto": {}}`, absent). `_check_config` has checked `toolConfig.tools`."""
    config = body.get("toolConfig")
    if not isinstance(config, dict) or config.get("toolChoice") is None:
        return None
    choice = config["toolChoice"]
    if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
        raise WireError("Malformed input request: toolConfig.toolChoice must have exactly one of auto, any, tool.")
    if "auto" in choice:
        return None
    name: str | None = None
    if "tool" in choice:
        tool = choice["tool"]
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not name:
            raise WireError("Malformed input request: toolConfig.toolChoice.tool.name is required.")
    try:
        return forced_call(_tool_specs(config["tools"]), name)
    except UnknownFunction:
        missing = "at least one toolSpec" if name is None else f"a tool named {name}"
        raise WireError(f"The value of toolConfig.toolChoice requires {missing} in toolConfig.tools.") from None


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "inputTokens": reply.prompt_tokens,
        "outputTokens": reply.completion_tokens,
        "totalTokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _tool_use_id(ident: int) -> str:
    return f"tooluse_mock{ident:012x}"


class BedrockWire:
    name = "bedrock"
    stream_headers: Headers = [(b"content-type", EVENT_STREAM)]

    def error_headers(self, status: int) -> Headers:
        return [(b"x-amzn-errortype", error_type(status).encode())]

    def parse(self, body: Any, route: Route) -> Prompt:
        if not isinstance(body, dict):
            raise WireError("Malformed input request: the request body must be a JSON object.")
        if not route.model:
            raise WireError("The provided model identifier is invalid.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("Malformed input request: messages must be a non-empty list.")
        _check_config(body)
        system = _system_text(body.get("system"))
        texts = [system] if system else []
        last_user = ""
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise WireError(f"Malformed input request: messages[{index}].role must be user or assistant.")
            text = _blocks_text(message.get("content"), f"messages[{index}]", texts)
            texts.append(text)
            if message["role"] == "user":
                last_user = text
        return Prompt(
            model=route.model,
            texts=texts,
            last_user=last_user,
            stream=route.stream,
            sse=False,
            forced_call=_forced_call(body),
        )

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes:
        call = reply.tool_call
        block: dict[str, Any] = {"text": reply.text}
        if call is not None:
            block = {"toolUse": {"toolUseId": _tool_use_id(ident), "name": call.name, "input": call.args()}}
        return orjson.dumps(
            {
                "output": {"message": {"role": "assistant", "content": [block]}},
                "stopReason": "end_turn" if call is None else "tool_use",
                "usage": _usage(reply),
                "metrics": {"latencyMs": 1},
            }
        )

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]:
        events = [frame("messageStart", {"role": "assistant"})]
        pieces = reply.chunks()
        if cut_after is not None:
            pieces = pieces[:cut_after]
        call = reply.tool_call
        if call is None:
            events.extend(frame("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": 0}) for p in pieces)
        else:
            start = {"toolUse": {"toolUseId": _tool_use_id(ident), "name": call.name}}
            events.append(frame("contentBlockStart", {"start": start, "contentBlockIndex": 0}))
            events.extend(
                frame("contentBlockDelta", {"delta": {"toolUse": {"input": p}}, "contentBlockIndex": 0})
                for p in pieces
            )
        if cut_after is not None:
            return events
        events.append(frame("contentBlockStop", {"contentBlockIndex": 0}))
        events.append(frame("messageStop", {"stopReason": "end_turn" if call is None else "tool_use"}))
        events.append(frame("metadata", {"usage": _usage(reply), "metrics": {"latencyMs": 1}}))
        return events

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)


WIRE = BedrockWire()
