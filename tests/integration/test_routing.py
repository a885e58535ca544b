"""The routing worker's breaker step (``stages.breaker_plan.apply_breakers``) with the real ``HealthMonitor``
it is given, on a real nats-server: open targets leave the plan, a half-open one is probed first (its
probe slot taken in the shared bucket). States are written into the GW_BREAKERS bucket the way the
monitors share them (an operator can do the same with ``nats kv put``). The step alone, with a fake
monitor: ``tests/unit/stages/test_breaker_plan.py``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from schemas.config import CircuitBreaker
from schemas.errors import ServiceUnavailable
from schemas.routing import PlannedTarget
from stages.breaker import BreakerState
from stages.breaker_plan import apply_breakers
from stages.routing import Plan
from tests.support.jetstream import JetStreamServer, eventually, jetstream_server
from workers.health_monitor import HealthMonitor
from workers.health_wire import breaker_key

pytestmark = pytest.mark.integration

COOLDOWN_S = 60.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as s:
        yield s


@pytest.fixture
async def monitor(server: JetStreamServer) -> AsyncIterator[HealthMonitor]:
    m = HealthMonitor(server.nc, lambda: CircuitBreaker(cooldown_s=COOLDOWN_S), "routing-test")
    await m.start()
    try:
        yield m
    finally:
        await m.stop()


async def set_state(server: JetStreamServer, monitor: HealthMonitor, target_id: str, state: str,
                    since: float) -> None:
    kv = await server.js.key_value("GW_BREAKERS")
    value = BreakerState(state=state, since=since, opens=1, cooldown_s=COOLDOWN_S)  # type: ignore[arg-type]
    await kv.put(breaker_key(target_id), orjson.dumps(value.as_dict()))
    await eventually(lambda: monitor.state(target_id) == state, what=f"{target_id} {state}")


async def open_now(server: JetStreamServer, monitor: HealthMonitor, target_id: str) -> None:
    await set_state(server, monitor, target_id, "open", time.time())


async def cooled_down(server: JetStreamServer, monitor: HealthMonitor, target_id: str) -> None:
    await set_state(server, monitor, target_id, "open", time.time() - COOLDOWN_S - 1)


def plan(*names: str) -> Plan:
    return Plan([PlannedTarget(provider="p", model=n, path=f"route.children.{i}") for i, n in enumerate(names)])


async def test_closed_breakers_keep_the_plan(monitor: HealthMonitor) -> None:
    kept, skipped = await apply_breakers(plan("a", "b"), monitor, "m")
    assert [t.model for t in kept] == ["a", "b"] and skipped == []


async def test_open_targets_are_skipped(server: JetStreamServer, monitor: HealthMonitor) -> None:
    await open_now(server, monitor, "p/a")
    kept, skipped = await apply_breakers(plan("a", "b", "c"), monitor, "m")
    assert [t.model for t in kept] == ["b", "c"] and skipped == ["p/a"]


async def test_a_cooled_down_target_is_probed_first_with_one_attempt_and_one_probe_per_request(
        server: JetStreamServer, monitor: HealthMonitor) -> None:
    await cooled_down(server, monitor, "p/b")
    await cooled_down(server, monitor, "p/c")
    kept, skipped = await apply_breakers(plan("a", "b", "c"), monitor, "m")
    assert [t.model for t in kept] == ["b", "a"]
    assert kept[0].probe and kept[0].retry.attempts_per_target == 1 and not kept[1].probe
    assert skipped == ["p/c"]
    assert monitor.state("p/b") == "half_open"


async def test_every_target_open_fails_fast_with_retry_after(server: JetStreamServer,
                                                             monitor: HealthMonitor) -> None:
    await open_now(server, monitor, "p/a")
    await open_now(server, monitor, "p/b")
    with pytest.raises(ServiceUnavailable) as raised:
        await apply_breakers(plan("a", "b"), monitor, "m")
    error = raised.value
    assert (error.status_code, error.code) == (503, "circuit_open")
    assert error.retry_after_s is not None and 0 < error.retry_after_s <= COOLDOWN_S
    assert "p/a" in error.message and "p/b" in error.message
