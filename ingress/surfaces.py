"""Client surfaces: how a client's API maps onto the canonical request and back.

The chain only ever sees the canonical (OpenAI Chat Completions) request, response and chunks; a
surface parses its own request into that, and renders answers, errors and streams in its own shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ingress import anthropic_surface as anthropic
from ingress.validation import parse_chat_request, parse_embeddings_request
from schemas.envelope import Endpoint
from schemas.errors import ErrorInfo


@dataclass(frozen=True)
class ParsedRequest:
    body: dict[str, Any]  # canonical
    model: str
    stream: bool


class StreamRenderer(Protocol):
    def chunk(self, chunk: dict[str, Any]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, info: ErrorInfo) -> bytes: ...


class Surface(Protocol):
    @property
    def endpoint(self) -> Endpoint: ...

    def parse(self, raw: bytes) -> ParsedRequest: ...

    def response_body(self, completion: dict[str, Any], model: str) -> dict[str, Any]: ...

    def error_body(self, info: ErrorInfo) -> dict[str, Any]: ...

    def stream(self, model: str, request_id: str) -> StreamRenderer: ...


class OpenAIStream:
    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, info: ErrorInfo) -> bytes:
        return b"data: " + orjson.dumps(info.to_body()) + b"\n\n"


class OpenAISurface:
    """``POST /v1/chat/completions``: the canonical shape itself."""

    endpoint: Endpoint = "chat.completions"

    def parse(self, raw: bytes) -> ParsedRequest:
        body, request = parse_chat_request(raw)
        return ParsedRequest(body, request.model, request.stream)

    def response_body(self, completion: dict[str, Any], model: str) -> dict[str, Any]:
        return completion

    def error_body(self, info: ErrorInfo) -> dict[str, Any]:
        return info.to_body()

    def stream(self, model: str, request_id: str) -> StreamRenderer:
        return OpenAIStream()


class EmbeddingsSurface(OpenAISurface):
    """``POST /v1/embeddings``: OpenAI's shape; never streamed."""

    endpoint: Endpoint = "embeddings"

    def parse(self, raw: bytes) -> ParsedRequest:
        body, request = parse_embeddings_request(raw)
        return ParsedRequest(body, request.model, False)


class AnthropicStream:
    """Canonical chunks → Anthropic's event sequence (message_start … message_stop)."""

    def __init__(self, model: str, request_id: str) -> None:
        self.encoder = anthropic.MessagesStreamEncoder(model, anthropic.message_id(request_id.replace("-", "")))

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return anthropic.encode_events(self.encoder.feed(chunk))

    def end(self) -> bytes:
        return anthropic.encode_events(self.encoder.finish())

    def error(self, info: ErrorInfo) -> bytes:
        return anthropic.error_event(info)


class AnthropicSurface:
    """``POST /v1/messages``: the Anthropic Messages API, for the official ``anthropic`` SDK."""

    endpoint: Endpoint = "messages"

    def parse(self, raw: bytes) -> ParsedRequest:
        body, request = anthropic.parse_messages_request(raw)
        return ParsedRequest(body, request.model, bool(request.stream))

    def response_body(self, completion: dict[str, Any], model: str) -> dict[str, Any]:
        return anthropic.to_messages_response(completion, model=model)

    def error_body(self, info: ErrorInfo) -> dict[str, Any]:
        return anthropic.error_body(info)

    def stream(self, model: str, request_id: str) -> StreamRenderer:
        return AnthropicStream(model, request_id)


OPENAI = OpenAISurface()
EMBEDDINGS = EmbeddingsSurface()
ANTHROPIC = AnthropicSurface()
