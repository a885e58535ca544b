"""``GET /metrics`` on a running gateway: one exposition of every process, which the Prometheus parser
reads, with each family the dashboards use, counting what was sent."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from infra.operator.launcher import RunningGateway

pytestmark = pytest.mark.integration

FAMILIES = {
    # requests, tokens, cost, latency (TTFT for streams), the gateway's own time per stage
    "gateway_requests", "gateway_tokens", "gateway_cost_usd", "gateway_request_duration_seconds",
    "gateway_time_to_first_token_seconds", "gateway_time_to_first_token_added_seconds", "gateway_overhead_seconds",
    "gateway_stage_duration_seconds",
    "gateway_provider_duration_seconds", "gateway_provider_attempts",
    # the broker's queues, breakers, the sink, each process
    "gateway_consumer_pending_messages", "gateway_consumer_ack_pending_messages",
    "gateway_consumer_redelivered_messages", "gateway_stream_messages", "gateway_breaker_state",
    "gateway_sink_lag_seconds", "gateway_sink_batch_events", "gateway_sink_rows", "gateway_worker_state",
    "gateway_event_loop_lag_seconds", "process_resident_memory_bytes", "process_cpu_seconds",
    "gateway_scrape_processes",
}


def scrape(gateway: RunningGateway) -> dict[str, list[Sample]]:
    response = httpx.get(f"{gateway.base_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families: dict[str, list[Sample]] = defaultdict(list)
    for family in text_string_to_metric_families(response.text):  # raises on anything malformed
        families[family.name].extend(family.samples)
    return families


def requests_of(families: dict[str, list[Sample]], model: str) -> float:
    return sum(s.value for s in families["gateway_requests"] if s.name == "gateway_requests_total"
               and s.labels["model"] == model and s.labels["kind"] == "interactive")


def sink_idle(families: dict[str, list[Sample]]) -> bool:
    """Every recorded event written: the sink's consumer has nothing pending or in hand."""
    return all(s.value == 0 for name in ("gateway_consumer_pending_messages", "gateway_consumer_ack_pending_messages")
               for s in families[name] if s.labels["consumer"] == "sink")


def settled(gateway: RunningGateway) -> dict[str, list[Sample]]:
    """A scrape once the sink has written everything recorded so far (earlier tests' requests included)."""
    deadline = time.monotonic() + 30
    families = scrape(gateway)
    while not sink_idle(families) and time.monotonic() < deadline:
        time.sleep(0.2)
        families = scrape(gateway)
    return families


def test_every_family_from_every_process_counting_what_was_sent(gateway: RunningGateway,
                                                                client: openai.OpenAI) -> None:
    model = "gpt-4o-mini"
    before = requests_of(settled(gateway), model)
    for _ in range(3):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Mail jane@example.com"}])
    for _ in client.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "hi"}]):
        pass
    deadline = time.monotonic() + 30  # the sink counts each request once it is written
    families = scrape(gateway)
    while requests_of(families, model) < before + 4 and time.monotonic() < deadline:
        time.sleep(0.3)
        families = scrape(gateway)
    assert requests_of(settled(gateway), model) == before + 4  # each once
    assert FAMILIES <= set(families), sorted(FAMILIES - set(families))
    processes = {s.labels.get("process") for s in families["process_resident_memory_bytes"]}
    assert {"stages.0", "stages.1", "lane", "batch", "sink", "ingress.0", "ingress.1"} <= processes, processes
    scraped = families["gateway_scrape_processes"][0].value
    assert scraped == len(processes)
    ok = [s for s in families["gateway_requests"] if s.labels["model"] == model and s.labels["status"] == "200"]
    # (the session's gateway serves other tests too: Messages requests to this model among them)
    assert {s.labels["kind"] for s in ok} == {"interactive"}
    assert "chat.completions" in {s.labels["endpoint"] for s in ok}
    assert any(s.labels["direction"] == "prompt" and s.value > 0 for s in families["gateway_tokens"])
    assert any(s.labels["entity"] == "EMAIL_ADDRESS" for s in families["gateway_pii_redactions"])
    stages = {s.labels["stage"] for s in families["gateway_stage_duration_seconds"]}
    assert {"redaction", "policy", "routing", "provider", "output_filter"} <= stages, stages
    ttft = [s for s in families["gateway_time_to_first_token_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in ttft) >= 1
    added = [s for s in families["gateway_time_to_first_token_added_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in added) >= 1
    consumers = {(s.labels["stream"], s.labels["consumer"]) for s in families["gateway_consumer_pending_messages"]}
    assert {("GW_REQ", "redaction"), ("GW_REQ", "redaction_batch"), ("GW_EVENTS", "sink")} <= consumers
    assert any(s.labels["target"].endswith(model) for s in families["gateway_breaker_state"])


def test_the_grafana_dashboard_uses_only_what_metrics_shows(gateway: RunningGateway) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "infra" / "grafana" / "gateway-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {re.sub(r"_(bucket|total|count|sum)$", "", name)
            for expr in exprs for name in re.findall(r"\b((?:gateway|process)_[a-z_]+)", expr)}
    shown = set(scrape(gateway))
    # the response cache's families count only with the cache on: tests/integration/test_cache.py checks them
    cache = {name for name in used if name.startswith("gateway_cache_")}
    assert cache, "the dashboard charts the response cache"
    assert used - cache and used - cache <= shown, sorted(used - cache - shown)
