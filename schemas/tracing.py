"""W3C trace context (``traceparent``) for a request, and the span ids of its trace.

A caller's ``traceparent`` (``00-<trace id>-<parent span id>-<flags>``) makes the gateway's spans part of
the caller's trace; without one the trace id is the request id itself (a UUIDv7 is 128 random-enough
bits, never all zero), so a trace is found by the id every answer and row carries. Span ids are derived
from the request id and the span's name: the same request always has the same span ids, so a record
written twice (a redelivery) exports the same spans, and ingress can answer the ``traceparent`` of the
gateway's root span before the trace is exported.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: str | None) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a valid version-00 ``traceparent``; None for anything else
    (the W3C rule: an invalid header is ignored, a new trace starts)."""
    if not value:
        return None
    found = _TRACEPARENT.match(value.strip().lower())
    if found is None or found.group(1) == _ZERO_TRACE or found.group(2) == _ZERO_SPAN:
        return None
    return found.group(1), found.group(2), int(found.group(3), 16)


def span_id(request_id: str, name: str) -> str:
    """A span's id (16 hex digits, never zero), from its request and its name (``gateway``,
    ``stage.policy``, ``attempt.0`` ...)."""
    digest = hashlib.blake2b(f"{request_id}/{name}".encode(), digest_size=8).hexdigest()
    return digest if digest != _ZERO_SPAN else "0" * 15 + "1"


def trace_of(request_id: str, traceparent: str) -> tuple[str, str | None, int]:
    """(trace id, the caller's span id or None, flags) of a request: the caller's trace when it sent a valid
    ``traceparent``, else one of its own keyed by the request id (sampled)."""
    parsed = parse_traceparent(traceparent)
    if parsed is not None:
        return parsed
    return request_id.replace("-", "").lower(), None, 1


def root_traceparent(request_id: str, traceparent: str) -> str:
    """The ``traceparent`` of the gateway's own span for the request, for the caller's answer."""
    trace_id, _, flags = trace_of(request_id, traceparent)
    return f"00-{trace_id}-{span_id(request_id, 'gateway')}-{flags:02x}"


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces: ``OTEL_TRACES_EXPORTER=otlp``, or an OTLP endpoint
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) with ``OTEL_TRACES_EXPORTER``
    not ``none``; never with ``OTEL_SDK_DISABLED=true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "otlp":
        return True
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(endpoint) and exporter not in ("none", "console")


def attempt_traceparent(request_id: str, traceparent: str, attempt: int, *, exported: bool) -> str | None:
    """The ``traceparent`` sent to a provider on a request's ``attempt``-th call (from 0). With traces
    ``exported``: the call's own span as the parent (None when the caller's trace is not sampled).
    Without: the caller's own, passed on unchanged, so its trace still reaches the provider (None when
    it sent none)."""
    if not exported:
        return traceparent.strip().lower() if parse_traceparent(traceparent) is not None else None
    trace_id, _, flags = trace_of(request_id, traceparent)
    if not flags & 1:
        return None
    return f"00-{trace_id}-{span_id(request_id, f'attempt.{attempt}')}-{flags:02x}"
