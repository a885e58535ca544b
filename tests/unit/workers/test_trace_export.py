"""A request's spans from its final record: parents, times, attributes; and when the OTEL_* variables
ask for traces at all."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from schemas.events import CallAttempt, EventType, RequestCompleted, StageAttrs, StageEvent
from schemas.tracing import tracing_wanted
from workers.trace_export import TraceExport, spans_of

RID = "01a2433b-d261-720b-ae43-235e20528c83"
RESOURCE = Resource.create({"service.name": "test"})


def stage(name: str, end: float, ms: float, **attrs: object) -> StageEvent:
    return StageEvent(event_id=f"e-{name}", request_id=RID, ts=end, stage=name, type=EventType.REQUEST_REDACTED,
                      duration_ms=ms, attrs=StageAttrs(**attrs))  # type: ignore[arg-type]


def record(**fields: object) -> RequestCompleted:
    attempts = [CallAttempt(target="openai/gpt-4o", status=503, code="upstream_error", ms=100.0,
                            upstream_status=503, at=100.020),
                CallAttempt(target="anthropic/claude", status=200, code="", ms=200.0, upstream_status=200, at=100.2)]
    base: dict[str, object] = dict(
        event_id="e1", request_id=RID, ts=100.0, finished_at=100.5, stage="output_filter", status_code=200,
        model_requested="fast", model_served="claude", provider="anthropic", prompt_tokens=12, completion_tokens=7,
        stage_events=[stage("redaction", 100.005, 4.0), stage("policy", 100.008, 2.0),
                      stage("routing", 100.010, 1.0), stage("provider", 100.41, 395.0, attempts=attempts),
                      stage("output_filter", 100.45, 3.0)])
    return RequestCompleted(**{**base, **fields})  # type: ignore[arg-type]


def test_the_gateway_its_stages_and_each_provider_call() -> None:
    spans = spans_of(record(), RESOURCE)
    by_name = {s.name: s for s in spans}
    assert len(spans) == 8  # gateway, 5 stages, 2 calls (a retry on another target)
    root = by_name["gateway chat.completions"]
    assert root.parent is None and root.kind is SpanKind.SERVER
    assert f"{root.context.trace_id:032x}" == RID.replace("-", "")
    provider = by_name["stage provider"]
    calls = [s for s in spans if s.name.startswith("call ")]
    assert all(s.parent is not None and s.parent.span_id == provider.context.span_id for s in calls)
    assert [c.status.status_code for c in calls] == [StatusCode.ERROR, StatusCode.UNSET]
    assert calls[1].start_time == int(100.2 * 1e9) and calls[1].attributes["gen_ai.system"] == "anthropic"
    assert root.attributes["gen_ai.usage.output_tokens"] == 7 and root.attributes["gen_ai.operation.name"] == "chat"
    assert provider.start_time == int((100.41 - 0.395) * 1e9)


def test_a_callers_trace_is_joined_and_an_unsampled_one_left_alone() -> None:
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    root = spans_of(record(traceparent=caller), RESOURCE)[0]
    assert root.parent is not None and root.parent.is_remote and f"{root.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert spans_of(record(traceparent=caller[:-2] + "00"), RESOURCE) == []


def test_a_request_refused_at_the_edge_is_one_error_span() -> None:
    spans = spans_of(record(status_code=401, stage_events=[], error_message="bad key", provider=""), RESOURCE)
    assert len(spans) == 1 and spans[0].status.status_code is StatusCode.ERROR


def test_calls_of_an_older_record_are_placed_one_after_another() -> None:
    events = [stage("provider", 100.4, 390.0, attempts=[
        CallAttempt(target="a/m", status=503, code="x", ms=100.0, upstream_status=503),
        CallAttempt(target="b/m", status=200, code="", ms=50.0, upstream_status=200)])]
    calls = [s for s in spans_of(record(stage_events=events), RESOURCE) if s.name.startswith("call ")]
    assert calls[1].start_time == calls[0].end_time


@pytest.mark.parametrize(("environ", "wanted"), [
    ({}, False), ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True), ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_off_unless_the_otel_variables_ask(environ: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(environ) is wanted
    export = TraceExport.from_environment(environ)
    assert (export is not None) is wanted
    if export is not None:
        export.shutdown()


def test_the_export_hands_every_span_to_the_processor() -> None:
    exporter = InMemorySpanExporter()
    export = TraceExport(SimpleSpanProcessor(exporter), RESOURCE)
    export.record(record())
    assert export.exported == 8 and len(exporter.get_finished_spans()) == 8
    export.shutdown()
