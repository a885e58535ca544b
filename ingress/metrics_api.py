"""``GET /metrics``: the whole gateway's Prometheus metrics, from whichever ingress serves it.

One scrape of every process over NATS (``infra/metrics_exposition.py``: each series labelled with its
``process``) plus the gateway-wide gauges only one place should report, read here at scrape time: the
broker's streams and consumers (``infra/jetstream_metrics.py``), budgets and rate limits per scope
(``infra/governance_metrics.py``). When an admin key is configured the
endpoint asks for it (``Authorization: Bearer <admin key>``, Prometheus's ``authorization`` scrape
setting): metrics name tenants, models and spend. Without one (the demo setup) it is open, like the
admin API's absence says: set an admin key before exposing the port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.governance_metrics import governance_families
from infra.jetstream_metrics import jetstream_families
from infra.metrics_exposition import merge, render, scrape_gateway
from ingress.asgi import Receive, Scope, Send, send_error
from schemas.errors import GatewayError, ServiceUnavailable
from schemas.governance import KeyDirectory

log = logging.getLogger("gateway.ingress")


class IngressCollector(Collector):
    """An ingress process's own gauges: callers waiting for answers, records not yet sent."""

    def __init__(self, waiting: Callable[[], int], unsent: Callable[[], int]) -> None:
        self._waiting = waiting
        self._unsent = unsent

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("gateway_ingress_waiting_requests", "Callers waiting for their answer here.",
                                value=self._waiting())
        yield GaugeMetricFamily("gateway_ingress_unsent_records", "Request records (edge refusals) not yet "
                                "handed to the broker.", value=self._unsent())


class MetricsApi:
    def __init__(self, nc: Callable[[], NatsClient | None], js: Callable[[], JetStreamContext | None],
                 authorize: Callable[[Scope], object], directory: Callable[[], KeyDirectory]) -> None:
        self._nc = nc
        self._js = js
        self._authorize = authorize
        self._directory = directory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authorize(scope)
            body = await self.exposition()
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        headers = [(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode()),  # the text format every Prometheus reads
                   (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def exposition(self) -> bytes:
        nc, js = self._nc(), self._js()
        if nc is None or js is None or not nc.is_connected:
            raise ServiceUnavailable("The gateway's message broker is unreachable, so its processes cannot be "
                                     "scraped; retry shortly.", code="broker_unavailable", retry_after_s=1.0)
        expositions = await scrape_gateway(nc)
        gateway_wide = await _safely(jetstream_families(js))
        gateway_wide += await _safely(governance_families(js, self._directory(), time.time()))
        gateway_wide.append(GaugeMetricFamily("gateway_scrape_processes", "Gateway processes that answered this "
                                              "scrape.", value=len(expositions)))
        return merge(expositions) + render(gateway_wide)


async def _safely(families: Awaitable[list[Metric]]) -> list[Metric]:
    try:
        return await families
    except Exception as exc:  # noqa: BLE001 - the processes' metrics are still worth answering
        log.warning("metrics: the broker's stream and consumer gauges could not be read: %s", exc)
        return []
