"""OpenTelemetry traces: each request's spans, made by the sink from its final record and exported over
OTLP, configured by the standard ``OTEL_*`` variables and off unless they ask for it.

Why from the record: every stage already records when it worked on the request (its stage events: end
time and duration) and the provider stage every call it made (``CallAttempt``: start and duration), and
the record reaches the sink exactly once. Making spans there costs the request path nothing (no context
to carry per hop, no exporter in any stage process) and a trace is complete or absent, never half-sent by
a process that died. The caller's ``traceparent`` rides in the envelope (``Envelope.traceparent``), so the
gateway's spans join the caller's trace; the span ids are derived from the request id
(``schemas/tracing.py``), so a redelivered record cannot make a second trace.

One trace per request: the gateway's span (``SERVER``, acceptance to the answer's end, GenAI attributes:
``gen_ai.system``, ``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` / ``output_tokens``), one child per stage that worked on it, and under the
provider stage one ``CLIENT`` span per provider call (retries and fallbacks included).

Enabled when ``OTEL_TRACES_EXPORTER`` is ``otlp``, or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and ``OTEL_TRACES_EXPORTER`` is
not ``none``; never with ``OTEL_SDK_DISABLED=true``. The exporter (OTLP over HTTP/protobuf) reads the
rest (headers, timeout, compression); ``OTEL_SERVICE_NAME`` names the service (default ``llm-gateway``).
A caller's ``traceparent`` with the sampled flag off is honoured: no spans.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from schemas.events import CallAttempt, RequestCompleted, StageEvent
from schemas.tracing import span_id, trace_of, tracing_wanted

log = logging.getLogger("gateway.traces")

SCOPE = InstrumentationScope("llm-gateway")
OPERATIONS = {"chat.completions": "chat", "messages": "chat", "embeddings": "embeddings"}
AttrValue = str | int | float | bool


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _context(trace_id: str, span: str, flags: int, *, remote: bool = False) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span, 16), is_remote=remote, trace_flags=TraceFlags(flags & 0xFF))


def _stage_windows(events: list[StageEvent]) -> dict[str, tuple[float, float, bool]]:
    """Each stage's (start, end, failed) from its events (a stage may record several: take them together)."""
    windows: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, bool] = defaultdict(bool)
    for event in events:
        windows[event.stage] += [event.ts - event.duration_ms / 1000, event.ts]
        failed[event.stage] |= event.status == "error"
    return {stage: (min(times), max(times), failed[stage]) for stage, times in windows.items()}


def _attempts(events: list[StageEvent]) -> list[CallAttempt]:
    for event in events:
        attempts = event.attrs.attempts
        if event.stage == "provider" and isinstance(attempts, list):
            return attempts
    return []


def spans_of(record: RequestCompleted, resource: Resource) -> list[ReadableSpan]:
    """The request's spans (gateway, stages, provider calls), with their parents; [] when the caller's
    trace is not sampled."""
    rid = record.request_id
    trace_id, caller, flags = trace_of(rid, record.traceparent)
    if not flags & 1:
        return []
    root_id = span_id(rid, "gateway")
    root = _context(trace_id, root_id, flags)
    error = record.status_code >= 400
    attrs: dict[str, AttrValue] = {
        "gen_ai.operation.name": OPERATIONS.get(record.endpoint, record.endpoint),
        "gen_ai.request.model": record.model_requested, "gateway.request_id": rid,
        "gateway.tenant": record.tenant, "gateway.endpoint": record.endpoint,
        "http.response.status_code": record.status_code, "gateway.attempts": record.attempts,
        "gateway.overhead_ms": record.gateway_overhead_ms, "gateway.stream": record.stream,
    }
    if record.provider:
        attrs["gen_ai.system"] = record.provider
    if record.model_served:
        attrs["gen_ai.response.model"] = record.model_served
    if record.prompt_tokens or record.completion_tokens:
        attrs["gen_ai.usage.input_tokens"] = record.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = record.completion_tokens
    if record.cost_usd is not None:
        attrs["gateway.cost_usd"] = float(record.cost_usd)
    if record.batch_id:
        attrs["gateway.batch_id"] = record.batch_id
    if record.error_code:
        attrs["error.type"] = record.error_code
    spans = [ReadableSpan(
        f"gateway {record.endpoint}", root, _context(trace_id, caller, flags, remote=True) if caller else None,
        resource, attrs, kind=SpanKind.SERVER, instrumentation_scope=SCOPE,
        status=Status(StatusCode.ERROR, record.error_message[:200]) if error else Status(StatusCode.UNSET),
        start_time=_ns(record.ts), end_time=_ns(max(record.finished_at, record.ts)))]
    windows = _stage_windows(record.stage_events)
    for stage, (start, end, failed) in windows.items():
        spans.append(ReadableSpan(
            f"stage {stage}", _context(trace_id, span_id(rid, f"stage.{stage}"), flags), root, resource,
            {"gateway.stage": stage, "gateway.request_id": rid}, kind=SpanKind.INTERNAL, instrumentation_scope=SCOPE,
            status=Status(StatusCode.ERROR) if failed else Status(StatusCode.UNSET),
            start_time=_ns(start), end_time=_ns(end)))
    provider = _context(trace_id, span_id(rid, "stage.provider"), flags) if "provider" in windows else root
    next_start = windows.get("provider", (record.ts, 0.0, False))[0]
    for n, attempt in enumerate(_attempts(record.stage_events)):
        start = attempt.at or next_start  # an earlier version's record: calls placed one after another
        next_start = start + attempt.ms / 1000
        system, _, model = attempt.target.partition("/")
        call_attrs: dict[str, AttrValue] = {
            "gen_ai.system": system, "gen_ai.request.model": model or attempt.target,
            "gateway.target": attempt.target, "gateway.attempt": n + 1, "http.response.status_code": attempt.status}
        if attempt.upstream_status is not None:
            call_attrs["gateway.upstream_status"] = attempt.upstream_status
        if attempt.code:
            call_attrs["error.type"] = attempt.code
        spans.append(ReadableSpan(
            f"call {attempt.target}", _context(trace_id, span_id(rid, f"attempt.{n}"), flags), provider, resource,
            call_attrs, kind=SpanKind.CLIENT, instrumentation_scope=SCOPE,
            status=Status(StatusCode.ERROR) if attempt.status >= 400 else Status(StatusCode.UNSET),
            start_time=_ns(start), end_time=_ns(next_start)))
    return spans


class TraceExport:
    """The sink's exporter: ``record`` each newly written request; ``shutdown`` flushes."""

    def __init__(self, processor: SpanProcessor, resource: Resource) -> None:
        self.processor = processor
        self.resource = resource
        self.exported = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TraceExport | None:
        environ = os.environ if environ is None else environ
        if not tracing_wanted(environ):
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "llm-gateway"})
        log.info("traces: exporting each request's spans over OTLP (OTEL_* variables)")
        return cls(BatchSpanProcessor(OTLPSpanExporter()), resource)

    def record(self, record: RequestCompleted) -> None:
        for span in spans_of(record, self.resource):
            self.processor.on_end(span)
            self.exported += 1

    def shutdown(self) -> None:
        self.processor.shutdown()
