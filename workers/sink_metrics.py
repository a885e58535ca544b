"""What the sink counts (Prometheus): every request once, from its final record (``request_metrics``),
and the sink's own work: rows written per table, the size of each insert, and how far behind the
events it writes are (``gateway_sink_lag_seconds``: the oldest event of the last insert, by its time)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import REGISTRY, CollectorRegistry

from infra.clickhouse.store import WriteResult
from schemas.events import Event, RequestCompleted
from workers.request_metrics import RequestMetrics

BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = RequestMetrics(registry)
        self.rows = Counter("gateway_sink_rows", "Rows the sink inserted into ClickHouse, by table.", ["table"],
                            registry=registry)
        self.duplicates = Counter("gateway_sink_duplicates", "Request records the sink had written already "
                                  "(redeliveries and reruns): no second row.", registry=registry)
        self.batch = Histogram("gateway_sink_batch_events", "Events per insert batch.", buckets=BATCH_BUCKETS,
                               registry=registry)
        self.lag = Gauge("gateway_sink_lag_seconds", "Age of the oldest event in the last insert when it was "
                         "written: how far analytics trail the requests.", registry=registry)

    def written(self, events: Sequence[Event], result: WriteResult, fresh: Sequence[RequestCompleted],
                now: float | None = None) -> None:
        """One insert done: count it, and each request it wrote for the first time (``fresh``:
        ``newly_written``)."""
        now = time.time() if now is None else now
        self.batch.observe(len(events))
        for table, rows in (("events", result.events), ("requests", result.requests),
                            ("guardrail_verdicts", result.verdicts), ("gateway_events", result.gateway_events)):
            if rows:
                self.rows.labels(table).inc(rows)
        if result.duplicates:
            self.duplicates.inc(result.duplicates)
        oldest = min((ev.finished_at if isinstance(ev, RequestCompleted) else ev.ts for ev in events), default=now)
        self.lag.set(max(0.0, now - oldest))
        for record in fresh:
            self.requests.observe(record)


def newly_written(events: Sequence[Event], result: WriteResult) -> list[RequestCompleted]:
    """The request records an insert wrote for the first time: each request once, ever (the store's
    de-duplication), so what is counted or traced from them is never doubled by a redelivery."""
    return [ev for ev in events if isinstance(ev, RequestCompleted) and ev.request_id.lower() in result.written]
