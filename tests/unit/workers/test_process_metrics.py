"""A worker process's gauges, read at scrape time: what it holds, its event loop's lag, its lane, and a
routing replica's view of each target."""

from __future__ import annotations

from typing import Any

from prometheus_client.registry import CollectorRegistry

from workers.process_metrics import BreakerCollector, WorkerStateCollector


def test_what_the_process_holds_its_lag_and_its_lane() -> None:
    held = {"n": 3}
    registry = CollectorRegistry()
    registry.register(WorkerStateCollector({"held": lambda: held["n"], "batch.window": lambda: 8}, lambda: 12.0,
                                           lambda: {"lane": "batch", "stages": "redaction,policy"}))
    held["n"] = 4  # read at scrape time
    assert registry.get_sample_value("gateway_worker_state", {"name": "held"}) == 4
    assert registry.get_sample_value("gateway_worker_state", {"name": "batch.window"}) == 8
    assert registry.get_sample_value("gateway_event_loop_lag_seconds") == 0.012
    assert registry.get_sample_value("gateway_process_info", {"lane": "batch", "stages": "redaction,policy"}) == 1


class Monitor:
    def __init__(self, targets: dict[str, tuple[str, float | None, int]]) -> None:
        self.targets = targets

    def known_targets(self) -> list[str]:
        return sorted(self.targets)

    def state(self, target: str) -> str:
        return self.targets[target][0]

    def latency_ms(self, target: str) -> float | None:
        return self.targets[target][1]

    def inflight(self, target: str) -> int:
        return self.targets[target][2]


def test_each_targets_breaker_and_health() -> None:
    monitor: Any = Monitor({"a/m": ("closed", 120.0, 2), "b/m": ("open", None, 0), "c/m": ("half_open", 40.0, 1)})
    registry = CollectorRegistry()
    registry.register(BreakerCollector(monitor))
    states = {t: registry.get_sample_value("gateway_breaker_state", {"target": t}) for t in ("a/m", "b/m", "c/m")}
    assert states == {"a/m": 0, "b/m": 2, "c/m": 1}
    assert registry.get_sample_value("gateway_target_latency_seconds", {"target": "a/m"}) == 0.12
    assert registry.get_sample_value("gateway_target_latency_seconds", {"target": "b/m"}) is None  # unknown
    assert registry.get_sample_value("gateway_target_inflight", {"target": "c/m"}) == 1
