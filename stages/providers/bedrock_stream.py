"""Amazon Bedrock ConverseStream: AWS event-stream frames → events → OpenAI chunks.

ConverseStream answers ``application/vnd.amazon.eventstream``: binary frames (prelude with lengths and
CRC32, typed headers, payload, message CRC32), decoded by ``botocore.eventstream.EventStreamBuffer``.
``BedrockEventStreamParser`` turns each frame into an ``SseEvent``: an ``event`` frame into
``(:event-type, payload JSON)``, an ``exception`` frame into ``(:exception-type, payload JSON)``, an
``error`` frame into ``("error", {"code", "message"})``.

``BedrockStreamDecoder``: ``messageStart`` → role chunk; ``contentBlockStart`` (``start.toolUse``) →
tool-call start; ``contentBlockDelta`` → ``delta.text`` content or ``delta.toolUse.input`` argument
fragments (reasoning deltas are dropped); ``contentBlockStop`` → ``{}`` arguments for a tool called
without any; ``messageStop`` → finish reason; ``metadata`` → usage chunk. The stream is finished at the
``metadata`` event that follows ``messageStop``: Bedrock always sends it last and usage exists only
there, so a stream that ends after ``messageStop`` without it counts as cut (its usage is lost) rather
than silently finished. Exception events raise the classified error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, cast

from botocore.eventstream import EventStreamBuffer, ParserError

from schemas.errors import GatewayError, ProviderError
from stages.providers.base import SseEvent, StreamState
from stages.providers.chunks import ChunkBuilder
from stages.providers.common import classify, completion_id, load_event_json, number

_CONTEXT_OVERFLOW = re.compile(r"input is too long|too many input tokens|input token count exceeds", re.IGNORECASE)

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}

# HTTP status the Bedrock Runtime API reference gives each error type (keys lower-cased: HTTP's
# x-amzn-ErrorType says ``ThrottlingException``, stream exception frames ``throttlingException``).
ERROR_STATUS = {
    "validationexception": 400,
    "servicequotaexceededexception": 400,
    "accessdeniedexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "throttlingexception": 429,
    "modelnotreadyexception": 429,
    "modelerrorexception": 500,  # 424 on the wire: the model failed on this request; another try may not
    "modelstreamerrorexception": 500,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
}


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH.get(str(stop_reason), "stop")


def prompt_tokens(reported: Mapping[str, Any]) -> int:
    """``inputTokens`` excludes cache reads and writes; OpenAI's ``prompt_tokens`` counts them."""
    return sum(number(reported.get(k)) for k in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"))


def classify_bedrock(status: int, headers: Mapping[str, str], error_type: str, message: str) -> GatewayError:
    """``classify`` with the error type in the message, and Bedrock's own wording of a context overflow."""
    error = classify(status, headers, f"{error_type}: {message}" if error_type else message)
    if status == 400 and _CONTEXT_OVERFLOW.search(message):
        error.code = "context_length_exceeded"
    return error


def bedrock_error(error_type: str, message: str) -> GatewayError:
    """An in-band error of Bedrock ``error_type`` (``throttlingException``, ...), at its documented status."""
    return classify_bedrock(ERROR_STATUS.get(error_type.lower(), 500), {}, error_type, message)


class BedrockEventStreamParser:
    """AWS event-stream frames (any piece size) → ``SseEvent``s. A frame whose CRC does not match raises."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer.add_data(chunk)
        events: list[SseEvent] = []
        try:
            for message in self._buffer:
                event = _event(cast(dict[str, Any], message.headers), message.payload)
                if event is not None:
                    events.append(event)
        except ParserError as exc:
            raise ProviderError(f"provider sent a corrupt event-stream frame: {type(exc).__name__}",
                                code="provider_bad_stream", retryable=True) from None
        return events

    def flush(self) -> list[SseEvent]:
        return []  # an incomplete trailing frame was cut: nothing to dispatch


def _event(headers: Mapping[str, Any], payload: bytes) -> SseEvent | None:
    kind = headers.get(":message-type", "event")
    text = payload.decode("utf-8", errors="replace")
    if kind == "event":
        name = headers.get(":event-type")
        return SseEvent(event=str(name), data=text or "{}") if name else None
    if kind == "exception":
        return SseEvent(event=str(headers.get(":exception-type") or "exception"), data=text or "{}")
    code, message = headers.get(":error-code"), headers.get(":error-message")
    return SseEvent(event="error", data=json.dumps({"code": code, "message": message}))


def _is_error(name: str) -> bool:
    return name == "error" or name.lower() in ERROR_STATUS or name.lower().endswith("exception")


class BedrockStreamDecoder:
    def __init__(self, *, model: str, request_id: str) -> None:
        self.state = StreamState()
        self._chunks = ChunkBuilder(chunk_id=completion_id(None, request_id), model=model)  # no id, no model
        self._tools: dict[int, int] = {}  # contentBlockIndex → OpenAI tool call index
        self._tools_with_arguments: set[int] = set()
        self._stopped = False

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        name = event.event or ""
        data = load_event_json(event.data)
        if _is_error(name):
            message = data.get("message") or data.get("Message") or "stream error"
            raise bedrock_error(str(data.get("code") or name) if name == "error" else name, str(message))
        handler = _HANDLERS.get(name)
        return handler(self, data) if handler else []  # unknown events: nothing to say

    def _message_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self._chunks.open()

    def _block_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        start = data.get("start")
        tool = start.get("toolUse") if isinstance(start, Mapping) else None
        if not isinstance(tool, Mapping):
            return []
        tool_index = len(self._tools)
        self._tools[number(data.get("contentBlockIndex"))] = tool_index
        return self._chunks.tool_start(tool_index, str(tool.get("toolUseId")), str(tool.get("name")))

    def _block_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta")
        if not isinstance(delta, Mapping):
            return []
        if isinstance(delta.get("text"), str):
            return self._chunks.text(delta["text"])
        tool = delta.get("toolUse")
        if isinstance(tool, Mapping):
            return self._arguments(number(data.get("contentBlockIndex")), str(tool.get("input") or ""))
        return []  # reasoningContent, citations: not part of the OpenAI shape

    def _arguments(self, block_index: int, fragment: str) -> list[dict[str, Any]]:
        if block_index not in self._tools or not fragment:
            return []
        self._tools_with_arguments.add(block_index)
        return self._chunks.tool_arguments(self._tools[block_index], fragment)

    def _block_stop(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        index = number(data.get("contentBlockIndex"))
        if index in self._tools and index not in self._tools_with_arguments:
            return self._arguments(index, "{}")  # a tool called without arguments still gets valid JSON
        return []

    def _message_stop(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._stopped = True
        return self._chunks.finish(self.state, finish_reason(data.get("stopReason")) or "stop")

    def _metadata(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        reported = data.get("usage")
        if isinstance(reported, Mapping):
            self.state.prompt_tokens = prompt_tokens(reported)
            self.state.completion_tokens = number(reported.get("outputTokens"))
        if not self._stopped:
            return []
        self.state.finished = True
        return self._chunks.usage(self.state)


_HANDLERS = {
    "messageStart": BedrockStreamDecoder._message_start,
    "contentBlockStart": BedrockStreamDecoder._block_start,
    "contentBlockDelta": BedrockStreamDecoder._block_delta,
    "contentBlockStop": BedrockStreamDecoder._block_stop,
    "messageStop": BedrockStreamDecoder._message_stop,
    "metadata": BedrockStreamDecoder._metadata,
}
