"""Aggregation over NATS: every process answers a scrape with its exposition, the merge labels each series
with its process, and the Prometheus parser reads the result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from infra.metrics_exposition import Exposition, answer_scrapes, merge, process_registry, scrape_gateway
from infra.nats_server import start_nats


def registry_with(requests: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("gateway_requests", "Requests.", ["model"], registry=registry).labels("m").inc(requests)
    Histogram("gateway_request_duration_seconds", "Latency.", registry=registry, buckets=(0.1, 1.0)).observe(0.5)
    return registry


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_the_merge_labels_every_series_with_its_process_and_keeps_one_family() -> None:
    merged = merge([Exposition("stages.1", generate_latest(registry_with(2)).decode()),
                    Exposition("stages.0", generate_latest(registry_with(3)).decode())]).decode()
    assert merged.count("# TYPE gateway_requests_total counter") == 1
    got = families(merged)
    assert got["gateway_requests"] == [("gateway_requests_total", {"model": "m", "process": "stages.0"}, 3.0),
                                       ("gateway_requests_total", {"model": "m", "process": "stages.1"}, 2.0)]
    buckets = [s for s in got["gateway_request_duration_seconds"] if s[0].endswith("_bucket")]
    assert len(buckets) == 6 and {s[1]["process"] for s in buckets} == {"stages.0", "stages.1"}
    assert "_created" not in merged  # creation-time series are off


def test_a_family_whose_type_disagrees_keeps_the_first_processs() -> None:
    other = CollectorRegistry()
    Gauge("gateway_requests", "Not a counter.", registry=other).set(7)
    got = families(merge([Exposition("a", generate_latest(registry_with(1)).decode()),
                          Exposition("b", generate_latest(other).decode())]).decode())
    assert [s[1]["process"] for s in got["gateway_requests"]] == ["a"]


def test_a_process_registry_has_the_process_collectors() -> None:
    names = {f.name for f in process_registry().collect()}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_gc_objects_collected"} <= names


@pytest.fixture
async def nc(tmp_path: Path) -> AsyncIterator[NatsClient]:
    server = start_nats(tmp_path / "nats")
    try:
        client = await nats.connect(server.url)
        try:
            yield client
        finally:
            await client.close()
    finally:
        server.stop()


async def test_one_scrape_gathers_every_process(nc: NatsClient) -> None:
    refreshed: list[str] = []

    async def refresh() -> None:
        refreshed.append("b")

    await answer_scrapes(nc, "a", registry=registry_with(1))
    await answer_scrapes(nc, "b", registry=registry_with(5), refresh=refresh)
    got = sorted(await scrape_gateway(nc), key=lambda e: e.process)
    assert [e.process for e in got] == ["a", "b"] and refreshed == ["b"]
    assert families(got[1].text)["gateway_requests"][0][2] == 5.0


async def test_a_scrape_nobody_answers_is_empty(nc: NatsClient) -> None:
    assert await scrape_gateway(nc, timeout_s=0.2) == []
