"""``GET /metrics`` over a real JetStream (ASGI, no HTTP server): the processes that answer the scrape, the
broker's gauges, the admin key when one is configured, and a clear 503 without a broker."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from infra.key_directory import config_directory
from infra.metrics_exposition import answer_scrapes
from ingress.admin_api import AdminApi
from ingress.config_view import ConfigView
from ingress.metrics_api import MetricsApi
from schemas.config import GatewayConfig
from tests.support.jetstream import JetStreamServer, jetstream_server

pytestmark = pytest.mark.server

ADMIN = "sk-admin-metrics"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


def api(server: JetStreamServer | None, config: GatewayConfig) -> httpx.AsyncClient:
    view = ConfigView.of(config)
    admin = AdminApi(lambda: None, lambda: view)
    app = MetricsApi(lambda: server.nc if server else None, lambda: server.js if server else None,
                     admin.authorize_if_enabled, lambda: config_directory(config))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_the_processes_and_the_broker_in_one_exposition(server: JetStreamServer) -> None:
    registry = CollectorRegistry()
    Counter("gateway_requests", "Requests.", ["model"], registry=registry).labels("m").inc(2)
    await answer_scrapes(server.nc, "stages.0", registry=registry)
    async with api(server, GatewayConfig()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f.samples for f in text_string_to_metric_families(response.text)}
    assert families["gateway_requests"][0].labels == {"model": "m", "process": "stages.0"}
    assert families["gateway_scrape_processes"][0].value == 1
    pending = {(s.labels["stream"], s.labels["consumer"]) for s in families["gateway_consumer_pending_messages"]}
    assert ("GW_REQ", "redaction") in pending and ("GW_EVENTS", "sink") in pending
    assert {s.labels["stream"] for s in families["gateway_stream_messages"]} >= {"GW_REQ", "GW_EVENTS", "GW_AUDIT"}


async def test_with_an_admin_key_configured_the_key_is_asked(server: JetStreamServer) -> None:
    config = GatewayConfig.model_validate({"admin": {"key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest()}})
    async with api(server, config) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"authorization": "Bearer sk-not-admin"})
        right = await client.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_admin_key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_admin_key")
    assert right.status_code == 200


async def test_without_a_broker_a_clear_503() -> None:
    async with api(None, GatewayConfig()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 503 and response.json()["error"]["code"] == "broker_unavailable"
