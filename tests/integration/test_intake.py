"""The first hop on a real nats-server: a process takes only what it can work on, and JetStream
redelivers only what a dead process held (a live one keeps its requests with +WPI, however long)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from infra import jetstream
from infra.nats_server import start_nats
from infra.settings import Settings
from schemas import subjects
from tests.support.jetstream import eventually
from workers.intake import PullIntake
from workers.leases import Leases

pytestmark = pytest.mark.integration
ACK_WAIT_S = 1.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    nats_server = start_nats(tmp_path / "nats")
    try:
        nc = await nats.connect(nats_server.url)
        await jetstream.declare(nc.jetstream(), Settings(ack_wait_s=ACK_WAIT_S))
        await nc.close()
        yield nats_server.url
    finally:
        nats_server.stop()


class Process:
    """One process hosting the first stage: it takes requests and holds them (never finishing)."""

    def __init__(self, nc: NatsClient, max_inflight: int) -> None:
        self.nc = nc
        self.held: list[Msg] = []
        self.leases = Leases(lambda: nc, ACK_WAIT_S)
        self.intake = PullIntake(lambda: nc, subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT, self.take,
                                 max_inflight=max_inflight, expires_s=5.0)

    def take(self, msg: Msg) -> None:
        self.held.append(msg)
        self.leases.hold(msg.reply)

    async def finish_one(self) -> None:
        msg = self.held.pop(0)
        await self.leases.ack(msg.reply)
        await self.intake.done()


async def publish(url: str, n: int, first: int = 0) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for i in range(first, first + n):
        await js.publish(subjects.REQ_REDACT, f"request {i}".encode(), headers={"Nats-Msg-Id": f"r{i}"})
    await nc.close()


async def consumer_state(url: str) -> tuple[int, int, int]:
    nc = await nats.connect(url)
    info = await nc.jetstream().consumer_info(subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT)
    await nc.close()
    return info.num_pending, info.num_ack_pending, info.num_redelivered


async def test_a_process_takes_only_what_it_can_work_on(server: str) -> None:
    nc = await nats.connect(server)
    proc = Process(nc, max_inflight=4)
    await proc.intake.start()
    await publish(server, 20)
    await eventually(lambda: len(proc.held) == 4, what="4 taken")
    await asyncio.sleep(0.2)
    assert len(proc.held) == 4
    pending, ack_pending, _ = await consumer_state(server)
    assert (pending, ack_pending) == (16, 4)  # the rest waits in the stream: no delivery clock runs
    await proc.finish_one()
    await eventually(lambda: len(proc.held) == 4 and proc.intake.taken == 5, what="one more taken")
    await proc.intake.stop()
    await proc.leases.stop()
    await nc.close()


async def test_only_what_a_dead_process_held_is_redelivered(server: str) -> None:
    alive_nc, dead_nc = await nats.connect(server), await nats.connect(server)
    alive, dead = Process(alive_nc, max_inflight=3), Process(dead_nc, max_inflight=2)
    await dead.intake.start()
    await publish(server, 2)
    await eventually(lambda: len(dead.held) == 2, what="the doomed process took 2")
    await alive.intake.start()
    await publish(server, 3, first=2)
    await eventually(lambda: len(alive.held) == 3, what="the live process took 3")
    await dead.leases.stop()
    await dead_nc.close()  # as kill -9: no more signals for what it held
    await asyncio.sleep(ACK_WAIT_S * 3)  # three times ack_wait: the live one kept its requests alive
    assert len(alive.held) == 3  # room for none: the 2 to redeliver wait in the stream for it
    assert all(m.metadata.num_delivered == 1 for m in alive.held)
    for _ in range(3):
        await alive.finish_one()
    await eventually(lambda: len(alive.held) == 2, what="the dead one's requests taken over")
    redelivered_bodies = sorted(m.data for m in alive.held)
    assert redelivered_bodies == [b"request 0", b"request 1"]
    assert all(m.metadata.num_delivered == 2 for m in alive.held)
    _, _, redelivered = await consumer_state(server)
    assert redelivered == 2  # the live process's three never were, though held 3 x ack_wait
    await alive.intake.stop()
    await alive.leases.stop()
    await alive_nc.close()
