"""A real nats-server with the gateway's JetStream declarations, for tests of the control plane."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from infra import jetstream
from infra.nats_server import start_nats
from infra.settings import Settings
from schemas import subjects
from schemas.audit import AuditEntry
from schemas.wire import decode


@dataclass
class JetStreamServer:
    url: str
    nc: NatsClient
    js: JetStreamContext
    pid: int  # of the nats-server, for tests that freeze it (``frozen_for``)


@asynccontextmanager
async def jetstream_server(store_dir: Path, *, declare: bool = True) -> AsyncIterator[JetStreamServer]:
    """Start nats-server (stopped by PID on exit), connect, and declare the streams and buckets."""
    server = start_nats(store_dir)
    try:
        nc = await nats.connect(server.url, connect_timeout=5)
        try:
            js = nc.jetstream()
            if declare:
                await jetstream.declare(js, Settings())
            yield JetStreamServer(server.url, nc, js, server.process.pid)
        finally:
            await nc.close()
    finally:
        server.stop()


@asynccontextmanager
async def frozen_for(pid: int, seconds: float) -> AsyncIterator[None]:
    """The nats-server ``pid`` frozen (SIGSTOP) on entering the block and thawed ``seconds`` later, or on
    leaving the block if that comes first: a broker whose answers come late, never lost."""
    os.kill(pid, signal.SIGSTOP)
    loop = asyncio.get_running_loop()
    thaw = loop.call_later(seconds, os.kill, pid, signal.SIGCONT)
    try:
        yield
    finally:
        thaw.cancel()
        os.kill(pid, signal.SIGCONT)


async def all_acked(js: JetStreamContext, stream: str, consumer: str) -> tuple[int, int]:
    """(pending, ack pending) of a durable consumer once its acks have been applied: acks published before
    this call are applied by the broker soon after, so an ack pending that stays is a real one."""
    info = await js.consumer_info(stream, consumer)
    for _ in range(100):
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.05)
        info = await js.consumer_info(stream, consumer)
    return info.num_pending, info.num_ack_pending


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` holds; the timeout only bounds a failure, it is never the assertion."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(0.01)


async def audit_published(js: JetStreamContext) -> list[tuple[str, AuditEntry]]:
    """Every entry stored in the GW_AUDIT stream with the subject it was published on, in stream order."""
    info = await js.stream_info(subjects.STREAM_AUDIT)
    first, last = info.state.first_seq, info.state.last_seq
    if not info.state.messages:
        return []
    found: list[tuple[str, AuditEntry]] = []
    for seq in range(first, last + 1):
        msg = await js.get_msg(subjects.STREAM_AUDIT, seq)
        found.append((msg.subject or "", decode(msg.data or b"", AuditEntry)))
    return found


async def audit_entries(js: JetStreamContext) -> list[AuditEntry]:
    """Every entry stored in the GW_AUDIT stream, in stream order."""
    return [entry for _subject, entry in await audit_published(js)]
