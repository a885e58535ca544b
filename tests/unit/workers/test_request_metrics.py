"""Each request counted once from its final record, and the sink's own work."""

from __future__ import annotations

import time

from prometheus_client.registry import CollectorRegistry

from infra.clickhouse.store import WriteResult
from schemas.events import ControlEvent, RequestCompleted
from schemas.guardrails import Verdict
from workers.request_metrics import RequestMetrics, limit_kind
from workers.sink_metrics import SinkMetrics, newly_written


def completed(rid: str = "r1", **fields: object) -> RequestCompleted:
    base: dict[str, object] = dict(
        event_id=f"e-{rid}", request_id=rid, ts=100.0, finished_at=101.0, stage="output_filter", status_code=200,
        tenant="acme", model_requested="fast", model_served="gpt-4o-mini", provider="openai", prompt_tokens=10,
        completion_tokens=5, cost_usd="0.000120", latency_ms=250.0, provider_ms=200.0, gateway_overhead_ms=50.0,
        attempts=1, stage_ms={"redaction": 3.0, "provider": 205.0}, redaction_counts={"EMAIL_ADDRESS": 2},
        verdicts=[Verdict(guardrail="injection", kind="prompt_injection", phase="input", outcome="flag")])
    return RequestCompleted(**{**base, **fields})  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_an_answered_request_in_every_family() -> None:
    registry = CollectorRegistry()
    RequestMetrics(registry).observe(completed())
    assert value(registry, "gateway_requests_total", endpoint="chat.completions", model="fast", provider="openai",
                 status="200", kind="interactive") == 1
    assert value(registry, "gateway_tokens_total", tenant="acme", model="gpt-4o-mini", direction="prompt") == 10
    assert value(registry, "gateway_cost_usd_total", tenant="acme", model="gpt-4o-mini") == 0.00012
    assert value(registry, "gateway_request_duration_seconds_sum", endpoint="chat.completions", model="fast",
                 provider="openai", kind="interactive") == 0.25
    assert value(registry, "gateway_overhead_seconds_sum", kind="interactive") == 0.05
    # the provider stage's own time is its time less the call
    assert abs(value(registry, "gateway_stage_duration_seconds_sum", stage="provider") - 0.005) < 1e-9
    assert value(registry, "gateway_stage_duration_seconds_sum", stage="redaction") == 0.003
    assert value(registry, "gateway_pii_redactions_total", entity="EMAIL_ADDRESS") == 2
    assert value(registry, "gateway_guardrail_verdicts_total", guardrail="injection", phase="input",
                 outcome="flag") == 1
    assert value(registry, "gateway_time_to_first_token_seconds_count", model="fast", provider="openai") == 0


def test_errors_streams_batches_refusals_and_unpriced_answers() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    metrics.observe(completed("r2", status_code=429, error_type="rate_limit_error", error_code="budget_exceeded",
                              limit_refused="key.k1 budget", provider="", cost_usd=None, prompt_tokens=0,
                              completion_tokens=0))
    metrics.observe(completed("r3", stream=True, ttfb_ms=80.0, ttfb_added_ms=6.0, batch_id="batch_1", delivery=2,
                              cost_usd=None))
    assert value(registry, "gateway_request_errors_total", endpoint="chat.completions", model="fast",
                 type="rate_limit_error", code="budget_exceeded") == 1
    assert value(registry, "gateway_limit_refusals_total", limit="key budget") == 1
    assert value(registry, "gateway_requests_total", endpoint="chat.completions", model="fast", provider="none",
                 status="429", kind="interactive") == 1
    assert value(registry, "gateway_time_to_first_token_seconds_sum", model="fast", provider="openai") == 0.08
    assert value(registry, "gateway_time_to_first_token_added_seconds_sum", model="fast", provider="openai") == 0.006
    assert value(registry, "gateway_requests_total", endpoint="chat.completions", model="fast", provider="openai",
                 status="200", kind="batch") == 1
    assert value(registry, "gateway_redelivered_requests_total") == 1
    assert value(registry, "gateway_unpriced_requests_total", model="gpt-4o-mini") == 1  # the 429 is not


def test_cache_outcomes_and_savings() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    metrics.observe(completed("h1", cache="hit", cache_saved_usd="0.0025", cost_usd="0"))
    metrics.observe(completed("m1", cache="miss"))
    metrics.observe(completed("o1"))  # the cache off: not counted
    assert value(registry, "gateway_cache_requests_total", model="fast", status="hit") == 1
    assert value(registry, "gateway_cache_requests_total", model="fast", status="miss") == 1
    assert value(registry, "gateway_cache_saved_usd_total", tenant="acme") == 0.0025


def test_limit_kinds_drop_the_ids() -> None:
    assert limit_kind("team.research rpm") == "team rpm" and limit_kind("tenant.acme budget") == "tenant budget"


def test_the_sink_counts_only_the_requests_it_wrote() -> None:
    registry = CollectorRegistry()
    sink = SinkMetrics(registry)
    control = ControlEvent(event_id="c1", ts=90.0, kind="config", subject="v1")
    events = [completed("R1"), completed("r2"), control]
    result = WriteResult(events=3, requests=1, duplicates=1, written=frozenset({"r1"}))
    sink.written(events, result, newly_written(events, result), now=110.0)
    assert value(registry, "gateway_requests_total", endpoint="chat.completions", model="fast", provider="openai",
                 status="200", kind="interactive") == 1  # r2 was a duplicate: written before
    assert value(registry, "gateway_sink_rows_total", table="requests") == 1
    assert value(registry, "gateway_sink_duplicates_total") == 1
    assert value(registry, "gateway_sink_batch_events_count") == 1
    assert value(registry, "gateway_sink_lag_seconds") == 20.0  # the control event, 20 s old
    sink.written([], WriteResult(), [], now=time.time())
    assert value(registry, "gateway_sink_lag_seconds") == 0.0
