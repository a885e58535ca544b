"""The audit chain's writer lock against a real nats-server: one holder, kept by refreshing, lost to
another when it lapsed, released at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas import subjects
from tests.support.jetstream import JetStreamServer, jetstream_server
from workers.audit_lock import LOCK_KEY, WriterLock

pytestmark = pytest.mark.server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


async def test_one_holder_at_a_time_until_it_releases(server: JetStreamServer) -> None:
    a, b = WriterLock(server.js, "sink-a"), WriterLock(server.js, "sink-b")
    assert await a.acquire() and a.held
    assert not await b.acquire() and not b.held
    assert await a.acquire() and await a.refresh()  # kept
    await a.release()
    assert not a.held
    assert await b.acquire()
    entry = await (await server.js.key_value(subjects.BUCKET_AUDIT_WRITER)).get(LOCK_KEY)
    assert entry.value == b"sink-b"


async def test_a_lapsed_holder_learns_it_lost_the_lock(server: JetStreamServer) -> None:
    a, b = WriterLock(server.js, "sink-a"), WriterLock(server.js, "sink-b")
    assert await a.acquire()
    await (await server.js.key_value(subjects.BUCKET_AUDIT_WRITER)).purge(LOCK_KEY)  # as when its entry expires
    assert await b.acquire()
    assert not await a.refresh() and not a.held
    assert not await a.acquire()
