"""Shared fixtures of the health tests (``test_health_reporter.py``, ``test_health_monitor.py``): a real
nats-server started per test, and a connection with the gateway's streams and buckets declared. Test
modules of other workers that define their own ``server`` fixture override this one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient

from infra.jetstream import declare
from infra.nats_server import EmbeddedNats, start_nats
from infra.settings import Settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    nats_server = start_nats(tmp_path / "nats")
    try:
        yield nats_server
    finally:
        nats_server.stop()


@pytest.fixture
async def nc(server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    client = await nats.connect(server.url)
    await declare(client.jetstream(), Settings())
    try:
        yield client
    finally:
        await client.close()

