"""The provider side's ``HealthReporter``: aggregated reports, keepalives, one message per interval,
probes at once, sleep while idle. The publishing tests run against a real nats-server (started per
test); waits poll with a generous timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from infra.nats_server import EmbeddedNats
from schemas import subjects
from tests.unit.workers.health_support import T, until
from workers.health_reporter import HealthReporter

pytestmark = pytest.mark.server


@pytest.fixture
async def reports(nc: NatsClient) -> list[dict[str, Any]]:
    """Every health report published, as it arrives."""
    got: list[dict[str, Any]] = []

    async def on_report(msg: Msg) -> None:
        got.append(orjson.loads(msg.data))

    await nc.subscribe(subjects.HEALTH_REPORT, cb=on_report)
    await nc.flush()
    return got


@pytest.fixture
async def reporter_conn(server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    """A provider replica's own connection."""
    client = await nats.connect(server.url)
    try:
        yield client
    finally:
        await client.close()


# -- reporter --------------------------------------------------------------------------------------

def test_report_aggregates_and_is_silent_when_idle() -> None:
    r = HealthReporter(None, "p1", keepalive_s=3600)  # type: ignore[arg-type]  # report() needs no connection
    assert r.report() is None
    for _ in range(3):
        r.begin(T)
    r.end(T, "ok", 100.0)
    r.end(T, "ok", 300.0)
    r.end("b/m", "neutral", 1.0)  # an end without a begin never drives in-flight below zero
    report = orjson.loads(r.report() or b"")
    assert report["reporter"] == "p1" and report["v"] == 1 and report["probes"] == []
    assert report["targets"] == {T: [2, 0, 400.0, 2, 1], "b/m": [0, 0, 0.0, 0, 0]}
    assert r.report() is None  # nothing changed, and the keepalive is not due
    r.end(T, "fail", 9.0)
    report = orjson.loads(r.report() or b"")
    assert report["targets"] == {T: [0, 1, 0.0, 0, 0]}
    assert report["seq"] == 2


def test_keepalive_repeats_the_in_flight_counts() -> None:
    r = HealthReporter(None, "p1", keepalive_s=0.0)  # type: ignore[arg-type]
    r.begin(T)
    assert orjson.loads(r.report() or b"")["targets"] == {T: [0, 0, 0.0, 0, 1]}
    assert orjson.loads(r.report() or b"")["targets"] == {T: [0, 0, 0.0, 0, 1]}
    r.end(T, "ok", 1.0)
    r.report()
    assert r.report() is None


async def test_one_message_per_interval_and_probes_at_once(reports: list[dict[str, Any]],
                                                           reporter_conn: NatsClient) -> None:
    got, conn = reports, reporter_conn
    r = HealthReporter(conn, "p1", interval_s=0.2)
    await r.start()
    try:
        for _ in range(50):
            r.begin(T)
            r.end(T, "ok", 10.0)
        await until(lambda: len(got) >= 1)
        assert sum(g["targets"][T][0] for g in got) == 50
        assert len(got) <= 2  # aggregated, not one per call
        slow = HealthReporter(conn, "p2", interval_s=60.0)  # only a probe can make it publish soon
        await slow.start()
        try:
            slow.begin(T)
            slow.end(T, "ok", 42.0, probe=True)
            await until(lambda: any(g["reporter"] == "p2" for g in got), timeout_s=10.0)
            probe_report = next(g for g in got if g["reporter"] == "p2")
            assert probe_report["probes"] == [[T, "ok", 42.0]]
            assert probe_report["targets"][T] == [0, 0, 0.0, 0, 0]  # a probe is not in the counts
        finally:
            await slow.stop()
    finally:
        await r.stop()


async def test_an_idle_reporter_sleeps_until_a_call_begins(reports: list[dict[str, Any]],
                                                            reporter_conn: NatsClient) -> None:
    got = reports
    r = HealthReporter(reporter_conn, "idle", interval_s=0.05)
    await r.start()
    try:
        await asyncio.sleep(0.3)
        assert r._asleep and got == []  # nothing to say: no wake-ups, no reports
        r.begin(T)
        await until(lambda: len(got) >= 1)
        assert got[0]["targets"][T][4] == 1  # the call in flight, reported as soon as it began
        r.end(T, "ok", 5.0)
        await until(lambda: sum(g["targets"].get(T, [0])[0] for g in got) == 1)
        await until(lambda: r._asleep)
    finally:
        await r.stop()

