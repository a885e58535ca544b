"""The audit chain's writer against a real nats-server and a real embedded chDB: entries chained in
stream order, a repeated entry chained once, the chain continued by a restarted writer, only the
holder of the writer lock writing, anchors in ``gateway_events`` and the log.

One store for the module (chDB hosts one engine path per process); the tests run in order on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.audit_log import record
from infra.clickhouse import Store
from infra.jetstream import LAST_FETCH_S
from infra.operator.audit_cli import COLUMNS
from schemas import subjects
from schemas.audit import AuditEntry, AuditRow
from schemas.audit_verify import verify
from schemas.ids import uuid7
from schemas.wire import encode
from tests.support.jetstream import JetStreamServer, all_acked, frozen_for, jetstream_server
from tests.support.store import migrated_store
from workers.audit_writer import AuditWriter

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with migrated_store(tmp_path_factory.mktemp("chdb_audit_writer")) as s:
        yield s


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


def writer(server: JetStreamServer, store: Store, executor: ThreadPoolExecutor) -> AuditWriter:
    return AuditWriter(server.js, store, executor, batch_rows=2, window_s=60, anchor_every_s=600, source="sink-t")


async def drain_until(w: AuditWriter, seq: int) -> None:
    """Drain as the sink's windows do (a fetch may return part of what is pending) until ``seq`` is chained."""
    deadline = time.monotonic() + 10
    while w.seq < seq and time.monotonic() < deadline:
        await w.drain()
        await asyncio.sleep(0.05)


def entry(subject: str) -> AuditEntry:
    return AuditEntry(entry_id=uuid7(), ts=time.time(), kind="budget", actor="nats:admin", subject=subject,
                      action="set", detail={"created": True})


def rows(store: Store) -> list[AuditRow]:
    found = store.query_readonly(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq, hash").rows
    return [AuditRow(seq=int(r[0]), ts_ms=int(r[1]), kind=str(r[2]), actor=str(r[3]), subject=str(r[4]),
                     action=str(r[5]), detail=str(r[6]), entry_id=str(r[7]), prev_hash=str(r[8]), hash=str(r[9]))
            for r in found]


async def test_entries_are_chained_in_stream_order_once_each(server: JetStreamServer, store: Store,
                                                            executor: ThreadPoolExecutor,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    first = [entry(f"team.t{i}") for i in range(3)]
    for e in first:
        await record(server.js, e, "admin")
    # a redelivery past the duplicate window
    await server.js.publish(subjects.audit_subject("admin"), encode(first[1]))
    w = writer(server, store, executor)
    await w.start()
    await drain_until(w, 3)
    await asyncio.sleep(0.2)
    await w.drain()  # the repeated entry comes last: skipped
    stored = rows(store)
    assert [(r.seq, r.subject) for r in stored] == [(1, "team.t0"), (2, "team.t1"), (3, "team.t2")]
    assert {r.actor for r in stored} == {"nats:admin"} and '"claimed_actor"' not in str(stored)
    assert verify(stored).intact and (w.seq, w.hash) == (3, stored[-1].hash)
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        await w.stop()
    assert f"audit anchor (shutdown): seq 3 hash {stored[-1].hash}" in caplog.text
    anchors = store.query_readonly("SELECT subject, to_state, reason FROM gateway_events "
                                   "WHERE kind = 'audit_anchor'").rows
    assert anchors == [["3", stored[-1].hash, "shutdown"]]
    info = await server.js.consumer_info(subjects.STREAM_AUDIT, subjects.CONSUMER_AUDIT)
    assert info.num_ack_pending == 0 and info.num_pending == 0  # all acked once stored


async def test_a_restarted_writer_continues_the_chain(server: JetStreamServer, store: Store,
                                                      executor: ThreadPoolExecutor) -> None:
    # a fresh broker (its stream starts empty) and the same store: the chain goes on from seq 3
    for e in (entry("tenant.a"), entry("tenant.b")):
        await record(server.js, e, "admin")
    w = writer(server, store, executor)
    await w.start()
    assert w.seq == 3
    await drain_until(w, 5)
    await w.stop()
    stored = rows(store)
    assert [r.seq for r in stored] == [1, 2, 3, 4, 5] and stored[3].prev_hash == stored[2].hash
    assert verify(stored).intact


async def test_only_the_lock_holder_writes_and_the_next_continues_its_chain(
        server: JetStreamServer, store: Store, executor: ThreadPoolExecutor) -> None:
    first, second = writer(server, store, executor), writer(server, store, executor)
    await first.start()
    await second.start()
    assert first.lock.held and not second.lock.held
    await record(server.js, entry("team.x"), "admin")
    await asyncio.sleep(0.2)
    await second.drain()  # not the writer: takes nothing
    info = await server.js.consumer_info(subjects.STREAM_AUDIT, subjects.CONSUMER_AUDIT)
    assert info.num_pending == 1
    await drain_until(first, 6)
    await first.stop()  # releases the lock
    await record(server.js, entry("team.y"), "admin")
    assert await second.hold() and second.seq == 6  # read the chain's end back on taking the lock
    await drain_until(second, 7)
    await second.stop()
    stored = rows(store)
    assert [r.seq for r in stored] == list(range(1, 8)) and verify(stored).intact


async def test_the_actor_is_the_subjects_identity_not_the_bodys_claim(
        server: JetStreamServer, store: Store, executor: ThreadPoolExecutor) -> None:
    def claiming(subject: str, actor: str) -> AuditEntry:
        return AuditEntry(entry_id=uuid7(), ts=time.time(), kind="key", actor=actor, subject=subject,
                          action="created", detail={"claimed_actor": "planted by the publisher"})

    sent = [
        ("gw.audit.by.op-alice", claiming("key.a", "nats:op-alice")),
        ("gw.audit.by.op-mallory", claiming("key.m", "root")),  # a lie in the body
        ("gw.audit.by.sink", claiming("key.s", "admin-api:boss")),  # only ingress is believed about admin keys
        ("gw.audit.by.ingress", claiming("key.i", "admin-api:alice")),
        ("gw.audit", claiming("key.o", "cli:ann@box")),  # an earlier version's bare subject
    ]
    for subject, e in sent:
        await server.js.publish(subject, encode(e), headers={"Nats-Msg-Id": e.entry_id})
    w = writer(server, store, executor)
    await w.start()
    start = w.seq
    await drain_until(w, start + len(sent))
    await w.stop()
    stored = rows(store)
    new = {r.subject: r for r in stored[start:]}
    assert {s: r.actor for s, r in new.items()} == {
        "key.a": "nats:op-alice", "key.m": "nats:op-mallory", "key.s": "nats:sink",
        "key.i": "admin-api:alice via nats:ingress", "key.o": "unauthenticated:cli:ann@box"}
    claims = {s: json.loads(r.detail).get("claimed_actor") for s, r in new.items()}
    assert claims == {"key.a": None, "key.m": "root", "key.s": "admin-api:boss", "key.i": None, "key.o": None}
    assert verify(stored).intact  # the chain hashes the derived actor: it verifies as stored


async def test_a_stopping_writer_chains_what_the_broker_sent_after_its_pull_gave_up(
        server: JetStreamServer, store: Store, executor: ThreadPoolExecutor) -> None:
    # A window's pull gives up after a millisecond while the broker is frozen; its answer lands during
    # the stop. Chained and acked by this writer, not left delivered-unacked for the 30 s ack wait.
    w = writer(server, store, executor)
    await w.start()
    start = w.seq
    sent = [entry(f"team.late{i}") for i in range(3)]
    for e in sent:
        await record(server.js, e, "admin")
    async with frozen_for(server.pid, LAST_FETCH_S / 2):
        await w.drain()
        assert w.seq == start
        await w.stop()
    stored = rows(store)
    assert [r.subject for r in stored[start:]] == ["team.late0", "team.late1", "team.late2"]
    assert verify(stored).intact
    assert await all_acked(server.js, subjects.STREAM_AUDIT, subjects.CONSUMER_AUDIT) == (0, 0)
