"""The routing side's ``HealthMonitor``: live statistics from health reports and shared circuit
breakers, against a real nats-server (started per test).

Two ``HealthMonitor`` instances stand for two routing replicas sharing the GW_BREAKERS bucket; a real
``HealthReporter`` stands for a provider replica. Time passes through an injected clock (cooldowns,
windows, reporter expiry), never through sleeps; waits poll with a generous timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError

from infra.nats_server import EmbeddedNats
from schemas import subjects
from schemas.config import CircuitBreaker
from schemas.events import ControlEvent
from schemas.wire import decode
from tests.unit.workers.health_support import T, until
from workers.health_monitor import HealthMonitor
from workers.health_reporter import HealthReporter
from workers.health_wire import breaker_key

pytestmark = pytest.mark.server

CFG = CircuitBreaker(min_requests=5, failure_rate=0.5, cooldown_s=10.0, window_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- fixtures --------------------------------------------------------------------------------------

class Cluster:
    """Two routing replicas' monitors and one provider replica's reporter, each on its own connection."""

    def __init__(self, url: str, cfg: CircuitBreaker) -> None:
        self.url = url
        self.cfg = cfg
        self.clock = Clock()
        self.monitors: list[HealthMonitor] = []
        self.reporters: list[HealthReporter] = []
        self.conns: list[NatsClient] = []

    async def monitor(self, source: str) -> HealthMonitor:
        conn = await nats.connect(self.url)
        self.conns.append(conn)
        # the connection itself, or (as the workers pass it) a function returning it
        nc: Any = conn if len(self.monitors) % 2 == 0 else (lambda: conn)
        m = HealthMonitor(nc, lambda: self.cfg, source, clock=self.clock, config_version=lambda: "v7")
        await m.start()
        self.monitors.append(m)
        return m

    async def reporter(self, reporter_id: str) -> HealthReporter:
        conn = await nats.connect(self.url)
        self.conns.append(conn)
        r = HealthReporter(lambda: conn, reporter_id)
        await r.start()
        self.reporters.append(r)
        return r

    async def close(self) -> None:
        for r in self.reporters:
            await r.stop()
        for m in self.monitors:
            await m.stop()
        self.reporters.clear()
        self.monitors.clear()
        for conn in self.conns:
            await conn.close()
        self.conns.clear()


@pytest.fixture
async def cluster(nc: NatsClient, server: EmbeddedNats) -> AsyncIterator[Cluster]:
    c = Cluster(server.url, CFG)
    try:
        yield c
    finally:
        await c.close()


async def control_events(nc: NatsClient) -> list[ControlEvent]:
    """Every ControlEvent stored in GW_EVENTS, in the order of the transitions (their breaker state's KV
    revision). Not the stream's order: each replica publishes the transitions it wrote on its own
    connection, so one replica's later transition can reach the stream first."""
    js = nc.jetstream()
    info = await js.stream_info(subjects.STREAM_EVENTS, subjects_filter=subjects.EVT_CONTROL)
    count = (info.state.subjects or {}).get(subjects.EVT_CONTROL, 0)
    if count == 0:
        return []
    sub = await js.pull_subscribe(subjects.EVT_CONTROL, stream=subjects.STREAM_EVENTS)
    msgs: list[Msg] = []
    while len(msgs) < count:
        msgs += await sub.fetch(count - len(msgs), timeout=5)
    await sub.unsubscribe()
    events = [decode(m.data, ControlEvent) for m in msgs]
    return sorted(events, key=lambda e: e.attrs.revision if isinstance(e.attrs.revision, int) else 0)


async def fail_calls(reporter: HealthReporter, n: int, target: str = T) -> None:
    for _ in range(n):
        reporter.begin(target)
        reporter.end(target, "fail", 5.0)


async def open_breaker(cluster: Cluster, reporter: HealthReporter) -> None:
    await fail_calls(reporter, cluster.cfg.min_requests)
    # open everywhere, and every monitor has counted the failures: the report and the breaker's KV update
    # travel on different subjects, so on a busy machine a monitor can see "open" before the report
    # (which would then land after whatever the test does next, e.g. after a reset)
    await until(lambda: all(m.state(T) == "open" and m.window(T)[1] >= cluster.cfg.min_requests
                            for m in cluster.monitors))


# -- monitors: live statistics ---------------------------------------------------------------------

async def test_both_monitors_see_latency_and_in_flight(cluster: Cluster) -> None:
    m1, m2 = await cluster.monitor("routing-1"), await cluster.monitor("routing-2")
    p1, p2 = await cluster.reporter("provider-1"), await cluster.reporter("provider-2")
    assert m1.latency_ms(T) is None and m1.inflight(T) == 0
    p1.begin(T)
    p1.begin(T)
    p1.end(T, "ok", 100.0)
    p2.begin(T)
    p2.begin(T)
    await until(lambda: all(m.inflight(T) == 3 and m.latency_ms(T) == 100.0 for m in (m1, m2)))
    p2.end(T, "ok", 200.0)
    await until(lambda: all(m.inflight(T) == 2 for m in (m1, m2)))
    latency = m1.latency_ms(T)
    assert latency is not None and 100.0 < latency < 200.0
    assert m2.latency_ms(T) == latency


async def test_routed_calls_count_until_reported(cluster: Cluster) -> None:
    m1 = await cluster.monitor("routing-1")
    m2 = await cluster.monitor("routing-2")
    m1.note_routed(T)
    m1.note_routed(T)
    assert m1.inflight(T) == 2 and m2.inflight(T) == 0  # only the replica that routed them knows
    cluster.clock.advance(0.5)
    assert m1.inflight(T) == 2
    p1 = await cluster.reporter("provider-1")
    p1.begin(T)
    cluster.clock.advance(0.1)  # a report received ≥ one interval after the notes covers them
    await until(lambda: m2.inflight(T) == 1)
    await until(lambda: m1.inflight(T) == 1)
    m1.note_routed(T)
    assert m1.inflight(T) == 2
    cluster.clock.advance(1.5)  # never reported: forgotten after a second
    assert m1.inflight(T) == 1


async def test_a_silent_reporter_is_forgotten(cluster: Cluster) -> None:
    m1 = await cluster.monitor("routing-1")
    p1 = await cluster.reporter("provider-1")
    p1.begin(T)
    await until(lambda: m1.inflight(T) == 1)
    await p1.stop()  # a crashed provider replica: no more reports, its call never ends
    cluster.clock.advance(6.0)
    await until(lambda: m1.inflight(T) == 0)


# -- monitors: shared circuit breakers -------------------------------------------------------------

async def test_closed_open_half_open_closed(cluster: Cluster, nc: NatsClient) -> None:
    m1, m2 = await cluster.monitor("routing-1"), await cluster.monitor("routing-2")
    p1 = await cluster.reporter("provider-1")
    assert (await m1.admit(T)).decision == "allow"

    await open_breaker(cluster, p1)
    skip = await m2.admit(T)
    assert skip.decision == "skip" and skip.retry_after_s == pytest.approx(10.0, abs=0.5)
    assert (await m1.admit("other/model")).decision == "allow"

    cluster.clock.advance(10.5)
    results = await asyncio.gather(m1.admit(T), m2.admit(T))
    assert sorted(a.decision for a in results) == ["probe", "skip"]  # half_open_probes = 1
    await until(lambda: all(m.state(T) == "half_open" for m in (m1, m2)))
    assert (await m1.admit(T)).decision == "skip"

    p1.begin(T)
    p1.end(T, "ok", 80.0, probe=True)
    await until(lambda: all(m.state(T) == "closed" for m in (m1, m2)))
    assert (await m1.admit(T)).decision == "allow" and (await m2.admit(T)).decision == "allow"

    # the failures that opened it are forgotten: one more failure does not reopen it
    await fail_calls(p1, 1)
    await until(lambda: all(m.window(T) == (0, 1) for m in (m1, m2)))
    p1.begin(T)
    p1.end(T, "ok", 80.0)
    await until(lambda: all(m.window(T) == (1, 1) for m in (m1, m2)))
    assert m1.state(T) == m2.state(T) == "closed"

    await cluster.close()  # lets every decided event land
    events = await control_events(nc)
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    opened, probing, closed = events
    assert all(e.kind == "breaker" and e.subject == T and e.config_version == "v7" for e in events)
    assert opened.reason == "failure_rate 1.00 over 5 calls in 30 s"
    assert opened.attrs.fail == 5 and opened.attrs.ok == 0 and opened.attrs.cooldown_s == 10.0
    assert opened.source in ("routing-1", "routing-2")
    assert probing.reason == "cooldown 10 s passed, probing"
    assert closed.reason == "1 of 1 probes succeeded"
    assert opened.ts < probing.ts <= closed.ts


async def test_a_failed_probe_reopens_for_longer(cluster: Cluster, nc: NatsClient) -> None:
    m1, m2 = await cluster.monitor("routing-1"), await cluster.monitor("routing-2")
    p1 = await cluster.reporter("provider-1")
    await open_breaker(cluster, p1)
    cluster.clock.advance(11.0)
    assert (await m2.admit(T)).decision == "probe"
    p1.begin(T)
    p1.end(T, "fail", 3.0, probe=True)
    await until(lambda: all(m.state(T) == "open" for m in (m1, m2)))
    skip = await m1.admit(T)
    assert skip.decision == "skip" and skip.retry_after_s == pytest.approx(20.0, abs=0.5)  # cooldown doubled
    cluster.clock.advance(20.5)
    assert (await m1.admit(T)).decision == "probe"

    await cluster.close()
    events = await control_events(nc)
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "open"), ("open", "half_open")]
    assert events[2].reason == "probe failed, cooling down 20 s"
    assert events[2].attrs.opens == 2


async def test_probe_slots_shared_by_replicas(cluster: Cluster) -> None:
    cluster.cfg = CFG.model_copy(update={"half_open_probes": 2})
    m1, m2 = await cluster.monitor("routing-1"), await cluster.monitor("routing-2")
    p1 = await cluster.reporter("provider-1")
    await open_breaker(cluster, p1)
    cluster.clock.advance(11.0)
    results = await asyncio.gather(m1.admit(T), m2.admit(T), m1.admit(T), m2.admit(T))
    assert sorted(a.decision for a in results) == ["probe", "probe", "skip", "skip"]

    p1.begin(T)
    p1.end(T, "ok", 10.0, probe=True)
    await until(lambda: m1.breaker(T).passed == 1 and m2.breaker(T).passed == 1)
    assert m1.state(T) == "half_open"  # one of two probes: still half open, no free slot
    assert (await m2.admit(T)).decision == "skip"
    p1.begin(T)
    p1.end(T, "ok", 10.0, probe=True)
    await until(lambda: all(m.state(T) == "closed" for m in (m1, m2)))


async def test_an_abandoned_probe_is_claimed_again_after_the_probe_timeout(cluster: Cluster) -> None:
    m1, m2 = await cluster.monitor("routing-1"), await cluster.monitor("routing-2")
    p1 = await cluster.reporter("provider-1")
    await open_breaker(cluster, p1)
    cluster.clock.advance(11.0)
    assert (await m1.admit(T)).decision == "probe"  # ... and the request went elsewhere
    await until(lambda: m2.state(T) == "half_open")
    assert (await m2.admit(T)).decision == "skip"
    cluster.clock.advance(30.0)
    assert (await m2.admit(T)).decision == "probe"


async def test_a_new_replica_loads_the_shared_state(cluster: Cluster) -> None:
    await cluster.monitor("routing-1")
    p1 = await cluster.reporter("provider-1")
    await open_breaker(cluster, p1)
    late = await cluster.monitor("routing-3")
    assert late.state(T) == "open"  # start() returns once the bucket's values are in
    assert (await late.admit(T)).decision == "skip"


async def test_disabled_breakers_always_allow_and_never_trip(cluster: Cluster) -> None:
    m1 = await cluster.monitor("routing-1")
    p1 = await cluster.reporter("provider-1")
    await open_breaker(cluster, p1)
    cluster.cfg = CFG.model_copy(update={"enabled": False})
    assert (await m1.admit(T)).decision == "allow"
    await fail_calls(p1, 20, target="b/m")
    await until(lambda: m1.window("b/m") == (0, 20))
    p1.begin("b/m")
    p1.end("b/m", "ok", 1.0)
    await until(lambda: m1.window("b/m") == (1, 20))
    assert m1.state("b/m") == "closed"


async def test_an_operator_can_force_a_breaker_closed(cluster: Cluster, nc: NatsClient) -> None:
    m1, m2 = await cluster.monitor("routing-1"), await cluster.monitor("routing-2")
    p1 = await cluster.reporter("provider-1")
    await open_breaker(cluster, p1)
    kv = await nc.jetstream().key_value(subjects.BUCKET_BREAKERS)
    await kv.delete(breaker_key(T))  # `nats kv del GW_BREAKERS openai.gpt-4o`
    await until(lambda: all(m.state(T) == "closed" and m.window(T) == (0, 0) for m in (m1, m2)))
    await open_breaker(cluster, p1)  # and it can trip again over the delete marker


async def test_a_replica_that_lagged_does_not_undo_an_operators_close(cluster: Cluster, nc: NatsClient) -> None:
    # m2 counts one failure more before it trips (a config reload reaching the replicas at different
    # moments), and its view of the bucket lags: its watcher is stopped here to make the lag certain.
    m1 = await cluster.monitor("routing-1")
    cluster.cfg = CFG.model_copy(update={"min_requests": 6})
    m2 = await cluster.monitor("routing-2")
    m2._config = lambda: cluster.cfg  # noqa: SLF001
    m1._config = lambda: CFG  # noqa: SLF001
    assert m2._watcher is not None  # noqa: SLF001
    await m2._watcher.stop()  # type: ignore[no-untyped-call]  # noqa: SLF001
    p1 = await cluster.reporter("provider-1")
    await fail_calls(p1, 5)
    await until(lambda: m1.state(T) == "open" and m2.window(T) == (0, 5))
    assert m2.state(T) == "closed"  # it never saw the trip
    kv = await nc.jetstream().key_value(subjects.BUCKET_BREAKERS)
    await kv.delete(breaker_key(T))  # the operator closes it
    await until(lambda: m1.state(T) == "closed")

    await fail_calls(p1, 1)  # m1: 1 failure since the close; m2: 6 in its window, enough to trip
    # wait for m2's decision to end either way: tripped (open) or its window restarted
    await until(lambda: m1.window(T) == (0, 1) and (m2.state(T) == "open" or m2.window(T) == (0, 0)))
    # m2's write expected a key it had never seen and found the operator's delete marker: it re-read,
    # learnt the breaker had been closed since those failures, and did not trip
    assert m2.state(T) == "closed" and m2.window(T) == (0, 0)
    with pytest.raises(KeyNotFoundError) as deleted:
        await kv.get(breaker_key(T))
    assert deleted.value.op == "DEL"  # still the operator's delete marker
    await cluster.close()
    events = await control_events(nc)
    assert [(e.from_state, e.to_state, e.source) for e in events] == [("closed", "open", "routing-1")]
