"""The contract every provider adapter fulfils. Adapters are pure: they build HTTP calls and
translate bodies, chunks and errors; the provider worker does the I/O.

Canonical shapes (see ``schemas.openai``): the request is an OpenAI Chat Completions body (dict);
a response is an OpenAI ``chat.completion`` dict with ``usage`` when the provider reported it; a
stream chunk is an OpenAI ``chat.completion.chunk`` dict. When usage is known, the last chunk a
decoder emits for a finished stream carries it (``choices: []``), as OpenAI does with
``stream_options.include_usage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.config import ProviderConfig
from schemas.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
)


@dataclass(frozen=True)
class HttpCall:
    """One HTTP request to send. ``content``, when set, is the exact body to send (a signed request:
    the signature covers these bytes) and ``json`` is then only the same body, parsed, for inspection."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str


@dataclass
class StreamState:
    """What a decoder has learnt so far; ``finished`` is set only by the provider's terminal event."""

    finished: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StreamParser(Protocol):
    """Turns the raw bytes of a stream body, in arbitrary pieces, into events for the decoder:
    ``sse.SseParser`` for ``text/event-stream``; Bedrock's parser for AWS event-stream frames."""

    def feed(self, chunk: bytes) -> list[SseEvent]: ...

    def flush(self) -> list[SseEvent]:
        """End of the body: the events still pending (an incomplete trailing frame is dropped)."""
        ...


class StreamDecoder(Protocol):
    state: StreamState

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        """Translate one provider SSE event into zero or more OpenAI chunks.

        Raises ``GatewayError`` when the provider sends an in-band error event."""
        ...


class ProviderAdapter(Protocol):
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
        """``credentials``: the provider's resolved secrets beyond ``api_key`` (Bedrock's AWS keys)."""
        ...

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]: ...

    def stream_parser(self) -> StreamParser:
        """A fresh parser for one stream's body (``SseParser`` for every SSE provider)."""
        ...

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder: ...

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError: ...


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds form only)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    secs = lowered.get("retry-after")
    if secs is not None:
        try:
            return max(0.0, float(secs))
        except ValueError:
            return None
    return None


def error_for_status(status: int, message: str, headers: Mapping[str, str]) -> GatewayError:
    """The shared status → error mapping; adapters extract ``message`` from their own error body.

    Retryable: 408, 409, 429 and every 5xx. Client errors keep the provider's status so the caller
    sees the provider's own 400 with its message."""
    retry_after = parse_retry_after(headers)
    text = f"provider returned {status}: {message}"
    if status == 429:
        return RateLimited(text, retry_after_s=retry_after)
    if status in (408, 409) or status >= 500:
        return ProviderError(text, status_code=502, retryable=True, retry_after_s=retry_after,
                             code=f"provider_{status}")
    if status in (401,):
        # Our caller authenticated fine; the gateway's provider credentials are wrong.
        return AuthenticationFailed(text, status_code=502, code="provider_auth_failed")
    if status == 402:  # the gateway's account with that provider is out of credit: another target may help
        return PermissionDenied(text, status_code=502, code="provider_payment_required")
    if status == 403:
        return PermissionDenied(text, status_code=502, code="provider_permission_denied")
    if status == 404:
        return NotFound(text, code="provider_model_not_found")
    if status == 413:
        return InvalidRequest(text, status_code=413, code="provider_request_too_large")
    return InvalidRequest(text, status_code=400 if status < 500 else status, code="provider_invalid_request")
