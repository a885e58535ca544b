"""The request metrics (Prometheus): counted once per request, by the sink, from its final record.

Every request ends in exactly one ``RequestCompleted``, and the sink writes each once (its de-duplication
drops redeliveries and reruns): counting there costs the request path nothing, sees requests ended in any
stage (refused at the edge, blocked by a guardrail, failed at the provider, answered), and counts each
once. What it cannot see is what has not ended yet: in-flight work is in the process gauges
(``gateway_worker_state``) and the JetStream consumer gauges.

Names and units follow Prometheus's conventions (base units: seconds, dollars; ``_total`` counters).
Labels are bounded by the config (models, providers, tenants, stages), never by request ids or users.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.registry import REGISTRY, CollectorRegistry

from schemas.events import RequestCompleted

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def kind_of(record: RequestCompleted) -> str:
    """``batch`` for a batch job's line or an async request (they ride the batch lane), else ``interactive``."""
    return "batch" if record.batch_id else "interactive"


def limit_kind(refused: str) -> str:
    """The kind of limit that refused a request (``key.k1 budget`` -> ``key budget``), without the id."""
    scope, _, what = refused.partition(" ")
    return f"{scope.split('.', 1)[0]} {what}".strip()


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.requests = Counter(
            "gateway_requests", "Requests ended, by surface (endpoint), requested model, provider and HTTP status.",
            ["endpoint", "model", "provider", "status", "kind"], registry=r)
        self.errors = Counter(
            "gateway_request_errors", "Requests that ended in an error, by error type and code.",
            ["endpoint", "model", "type", "code"], registry=r)
        self.tokens = Counter(
            "gateway_tokens", "Tokens used, by tenant, served model and direction (prompt, completion, cached).",
            ["tenant", "model", "direction"], registry=r)
        self.cost = Counter(
            "gateway_cost_usd", "Cost in US dollars as recorded (batch discounts applied), by tenant and served model.",
            ["tenant", "model"], registry=r)
        self.unpriced = Counter(
            "gateway_unpriced_requests", "Answered requests whose cost is unknown (no price for the model).",
            ["model"], registry=r)
        self.latency = Histogram(
            "gateway_request_duration_seconds", "Time from acceptance to the answer's end, by surface and model.",
            ["endpoint", "model", "provider", "kind"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds", "Streams: time from acceptance to the first byte of the answer.",
            ["model", "provider"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.ttft_added = Histogram(
            "gateway_time_to_first_token_added_seconds",
            "Streams: what the gateway added to the caller's first token (the provider's own time to it excluded).",
            ["model", "provider"], buckets=OVERHEAD_BUCKETS_S, registry=r)
        self.provider = Histogram(
            "gateway_provider_duration_seconds", "Time spent waiting for providers (every attempt), by provider.",
            ["provider"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.overhead = Histogram(
            "gateway_overhead_seconds", "The gateway's own time per request (its time less the provider's).",
            ["kind"], buckets=OVERHEAD_BUCKETS_S, registry=r)
        self.stage = Histogram(
            "gateway_stage_duration_seconds", "Each stage's own time per request (the provider stage's less the call).",
            ["stage"], buckets=OVERHEAD_BUCKETS_S, registry=r)
        self.attempts = Counter(
            "gateway_provider_attempts", "Provider calls made (retries and fallbacks included), by requested model.",
            ["model"], registry=r)
        self.redelivered = Counter(
            "gateway_redelivered_requests", "Requests that ended after a redelivery (a process died or stalled).",
            registry=r)
        self.cache = Counter(
            "gateway_cache_requests", "Requests by what the response cache did (hit, miss, refresh, bypass), by model.",
            ["model", "status"], registry=r)
        self.cache_saved = Counter(
            "gateway_cache_saved_usd", "What the provider calls a cache hit saved cost, by tenant.", ["tenant"],
            registry=r)
        self.redactions = Counter(
            "gateway_pii_redactions", "PII values redacted from prompts, by entity type.", ["entity"], registry=r)
        self.findings = Counter(
            "gateway_output_findings", "Findings of the output filter in answers, by type.", ["type"], registry=r)
        self.verdicts = Counter(
            "gateway_guardrail_verdicts", "Guardrail decisions, by guardrail, phase and outcome.",
            ["guardrail", "phase", "outcome"], registry=r)
        self.refusals = Counter(
            "gateway_limit_refusals", "Requests refused by a budget or rate limit, by the kind of limit.",
            ["limit"], registry=r)

    def observe(self, record: RequestCompleted) -> None:
        model = record.model_requested or "unknown"
        served = record.model_served or model
        provider = record.provider or "none"
        kind = kind_of(record)
        status = str(record.status_code)
        self.requests.labels(record.endpoint, model, provider, status, kind).inc()
        if record.status_code >= 400:
            self.errors.labels(record.endpoint, model, record.error_type or "unknown", record.error_code or "").inc()
        if record.limit_refused:
            self.refusals.labels(limit_kind(record.limit_refused)).inc()
        tenant = record.tenant or "none"
        for direction, count in (("prompt", record.prompt_tokens), ("completion", record.completion_tokens),
                                 ("cached", record.cached_tokens)):
            if count:
                self.tokens.labels(tenant, served, direction).inc(count)
        if record.cost_usd is not None:
            cost = float(record.cost_usd)
            if cost:
                self.cost.labels(tenant, served).inc(cost)
        elif record.status_code == 200 and record.provider:
            self.unpriced.labels(served).inc()
        self.latency.labels(record.endpoint, model, provider, kind).observe(record.latency_ms / 1000)
        if record.stream and record.ttfb_ms is not None:
            self.ttft.labels(model, provider).observe(record.ttfb_ms / 1000)
        if record.stream and record.ttfb_added_ms is not None:
            self.ttft_added.labels(model, provider).observe(record.ttfb_added_ms / 1000)
        if record.provider_ms:
            self.provider.labels(provider).observe(record.provider_ms / 1000)
        self.overhead.labels(kind).observe(record.gateway_overhead_ms / 1000)
        for stage, ms in record.stage_ms.items():
            own = ms - record.provider_ms if stage == "provider" else ms  # the provider stage's less its calls
            self.stage.labels(stage).observe(max(0.0, own) / 1000)
        if record.attempts:
            self.attempts.labels(model).inc(record.attempts)
        if record.delivery > 1:
            self.redelivered.inc()
        if record.cache:
            self.cache.labels(model, record.cache).inc()
            if record.cache_saved_usd:
                self.cache_saved.labels(tenant).inc(float(record.cache_saved_usd))
        for entity, count in record.redaction_counts.items():
            self.redactions.labels(entity).inc(count)
        for finding, count in record.output_findings.items():
            self.findings.labels(finding).inc(count)
        for verdict in record.verdicts:
            self.verdicts.labels(verdict.guardrail, str(verdict.phase), str(verdict.outcome)).inc()
