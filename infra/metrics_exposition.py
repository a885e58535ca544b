"""The whole gateway's Prometheus metrics on one endpoint, however many processes: aggregation over NATS.

Every gateway process keeps its own metrics in prometheus_client's registry and answers a scrape
(``gw.metrics.scrape``, no queue group: every process answers) with its text exposition, compressed.
The ingress that serves ``GET /metrics`` asks once, takes the answers until none has come for
``quiet_s`` (or ``timeout_s`` passed), and merges them into one exposition in which each series carries
a ``process`` label (``stages.0``, ``lane``, ``sink``, ``ingress.1`` ...): the name ``gateway up`` gives
the process, stable across its restarts, so a counter that restarts from zero is one series Prometheus
sees reset (``rate()`` handles it). Sum over ``process`` for the gateway's totals.

The same works across machines (any process connected to the cluster answers), unlike
prometheus_client's multiprocess mode, which shares files in one directory on one host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import prometheus_client
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from schemas import subjects

log = logging.getLogger("gateway.metrics")

# ``*_created`` series (each counter's creation time) double the exposition for nothing a dashboard uses
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

PROCESS_LABEL = "process"
SCRAPE_TIMEOUT_S = 1.0
SCRAPE_QUIET_S = 0.15
"""A scrape waits for answers until none came for this long (every process answers within a few ms)."""

Refresh = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Exposition:
    process: str
    text: str


async def answer_scrapes(nc: NatsClient, process: str, *, registry: CollectorRegistry = prometheus_client.REGISTRY,
                         refresh: Refresh | None = None) -> Subscription:
    """Answer every scrape with this process's metrics (``refresh`` first: gauges read at scrape time)."""

    async def on_scrape(msg: Msg) -> None:
        if not msg.reply:
            return
        if refresh is not None:
            try:
                await refresh()
            except Exception as exc:  # noqa: BLE001 - the rest of the metrics are still worth answering
                log.warning("metrics: refreshing before a scrape failed: %s", exc)
        body = zlib.compress(generate_latest(registry), 1)
        with contextlib.suppress(Exception):  # the asker may be gone; the next scrape asks again
            await nc.publish(msg.reply, body, headers={"process": process})

    return await nc.subscribe(subjects.METRICS_SCRAPE, cb=on_scrape)


async def scrape_gateway(nc: NatsClient, *, timeout_s: float = SCRAPE_TIMEOUT_S,
                         quiet_s: float = SCRAPE_QUIET_S) -> list[Exposition]:
    """Every live process's metrics: one scrape published, the answers gathered (see the module doc)."""
    inbox = nc.new_inbox()
    answers: asyncio.Queue[Msg] = asyncio.Queue()

    async def take(msg: Msg) -> None:
        answers.put_nowait(msg)

    sub = await nc.subscribe(inbox, cb=take)
    got: list[Exposition] = []
    try:
        await nc.publish(subjects.METRICS_SCRAPE, b"", reply=inbox)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(answers.get(), min(left, quiet_s if got else left))
            except TimeoutError:
                break
            try:
                text = zlib.decompress(msg.data).decode()
            except (zlib.error, UnicodeDecodeError):
                log.warning("metrics: an undecodable scrape answer was dropped")
                continue
            got.append(Exposition((msg.headers or {}).get("process", "unknown"), text))
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return got


class Families(Collector):
    """Metric families already built (merged answers, gauges read at scrape time), as a collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(expositions: Sequence[Exposition]) -> bytes:
    """One text exposition of many processes' (each series labelled with its ``process``); a family
    the processes disagree about (type) keeps the first process's type, the others' series are dropped."""
    families: dict[str, Metric] = {}
    for exposition in sorted(expositions, key=lambda e: e.process):
        for family in text_string_to_metric_families(exposition.text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type,
                                                        family.unit)
            elif merged.type != family.type:
                log.warning("metrics: %s is a %s in %s but a %s elsewhere; its series there are left out",
                            family.name, family.type, exposition.process, merged.type)
                continue
            for sample in family.samples:
                merged.samples.append(sample._replace(labels={**sample.labels, PROCESS_LABEL: exposition.process}))
    return render(families.values())


def render(families: Iterable[Metric]) -> bytes:
    """The text exposition of metric families already built."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(families))
    return generate_latest(registry)


def process_registry() -> CollectorRegistry:
    """A process's own registry with prometheus_client's process collectors (RSS, CPU seconds, open
    files, garbage collections): one per process context, never the library's global one, so two
    contexts in one process (tests) cannot collide."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def process_name(default: str) -> str:
    """The name a process reports its metrics under: ``gateway up``'s name for it, else ``default``-pid."""
    return os.environ.get("GATEWAY_PROCESS_NAME") or f"{default}-{os.getpid()}"
