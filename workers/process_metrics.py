"""Each worker process's own Prometheus metrics: its registry, read at scrape time (nothing per request).

- ``process_*`` / ``python_*``: prometheus_client's process collectors (RSS, CPU seconds, open files,
  garbage collections);
- ``gateway_worker_state{name}``: what the process holds now, the gauges its workers declare
  (``WorkerContext.gauges``: requests held, tasks, open streams, a batch driver's jobs and window ...);
- ``gateway_event_loop_lag_seconds``: how late its event loop ran at the last measure (the load report's
  figure: a request arriving now waits about this long before its stage works on it);
- ``gateway_process_info{lane, stages}``: which lane and stages it serves;
- in a routing process, ``gateway_breaker_state{target}`` (0 closed, 1 half-open, 2 open, as this
  replica sees the shared state), ``gateway_target_latency_seconds`` and ``gateway_target_inflight``: the
  live health smart routing uses.

One registry per process context (``WorkerContext.metrics``), never prometheus_client's global one: two
contexts in one process (tests) cannot collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.health_monitor import HealthMonitor

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class WorkerStateCollector(Collector):
    def __init__(self, gauges: Mapping[str, Callable[[], int]], lag_ms: Callable[[], float],
                 info: Callable[[], dict[str, str]]) -> None:
        self._gauges = gauges
        self._lag_ms = lag_ms
        self._info = info

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("gateway_worker_state", "What the process holds now, by name.", labels=["name"])
        for name, read in sorted(self._gauges.items()):
            state.add_metric([name], float(read()))
        yield state
        yield GaugeMetricFamily("gateway_event_loop_lag_seconds", "How late the event loop ran at the last measure.",
                                value=self._lag_ms() / 1000)
        yield InfoMetricFamily("gateway_process", "The lane and stages the process serves.", value=self._info())


class BreakerCollector(Collector):
    """The routing replica's view of each target it has seen: breaker state and live health."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self._monitor
        state = GaugeMetricFamily("gateway_breaker_state", "Circuit breaker per target: 0 closed, 1 half-open, 2 open.",
                                  labels=["target"])
        latency = GaugeMetricFamily("gateway_target_latency_seconds", "EWMA latency of a target's successful calls.",
                                    labels=["target"])
        inflight = GaugeMetricFamily("gateway_target_inflight", "Calls in flight to a target, at every provider "
                                     "replica.", labels=["target"])
        for target in monitor.known_targets():
            state.add_metric([target], BREAKER_STATES.get(monitor.state(target), 0))
            ms = monitor.latency_ms(target)
            if ms is not None:
                latency.add_metric([target], ms / 1000)
            inflight.add_metric([target], monitor.inflight(target))
        yield state
        yield latency
        yield inflight
