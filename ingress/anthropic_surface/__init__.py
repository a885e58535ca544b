"""The Anthropic Messages client surface (``/v1/messages``, ``/v1/messages/count_tokens``) as pure
translation functions: Anthropic request → canonical OpenAI body, canonical response, chunks and errors
→ Anthropic message, stream events and error bodies. No I/O; ``ingress.app`` wires the routes."""

from __future__ import annotations

from ingress.anthropic_surface.errors import error_body, error_event, error_type
from ingress.anthropic_surface.models import CountTokensRequest, MessagesRequest
from ingress.anthropic_surface.request import parse_count_tokens_request, parse_messages_request, to_canonical
from ingress.anthropic_surface.response import message_id, stop_reason, to_messages_response
from ingress.anthropic_surface.stream import MessagesStreamEncoder, encode_events, encode_sse, ping_event
from ingress.anthropic_surface.tokens import count_tokens

__all__ = [
    "CountTokensRequest",
    "MessagesRequest",
    "MessagesStreamEncoder",
    "count_tokens",
    "encode_events",
    "encode_sse",
    "error_body",
    "error_event",
    "error_type",
    "message_id",
    "parse_count_tokens_request",
    "parse_messages_request",
    "ping_event",
    "stop_reason",
    "to_canonical",
    "to_messages_response",
]
