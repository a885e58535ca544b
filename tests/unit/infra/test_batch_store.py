"""Batch jobs in the GW_BATCHES bucket against a real nats-server: created once, read back only by their
tenant (and kind), changed by compare-and-set without losing a concurrent change, listed newest first,
and the driver's lease: one live owner, renewed by it, taken over once it lapsed, released."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from infra.batch_store import LEASE_PREFIX, BatchStore, Lease, job_key
from infra.jetstream import BATCHES_BUCKET
from schemas.batches import BatchJob, Kind
from schemas.wire import decode, replace
from tests.support.jetstream import jetstream_server

pytestmark = pytest.mark.server


def _job(job_id: str, tenant: str = "acme", kind: Kind = "openai", created_at: int = 1_700_000_000) -> BatchJob:
    return BatchJob(id=job_id, kind=kind, tenant=tenant, api_key_hash="h", endpoint="/v1/chat/completions",
                    input_file_id="file-in", created_at=created_at, expires_at=created_at + 86_400)


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    async with jetstream_server(tmp_path / "nats", declare=False) as srv:
        await srv.js.create_key_value(BATCHES_BUCKET)
        yield srv.js


@pytest.fixture
def store(js: JetStreamContext) -> BatchStore:
    return BatchStore(js)


async def test_create_then_get_and_a_second_create_is_refused(store: BatchStore) -> None:
    job = _job("batch_a")
    assert await store.get("batch_a") is None
    await store.create(job)
    found = await store.get("batch_a")
    assert found is not None and found[0] == job and found[1] > 0
    with pytest.raises(KeyWrongLastSequenceError):
        await store.create(replace(job, tenant="other"))
    assert await store.get("batch_a") == found


async def test_owned_only_by_its_tenant_and_of_the_kinds_asked(store: BatchStore) -> None:
    job = _job("batch_a", kind="anthropic")
    await store.create(job)
    assert await store.owned("acme", "batch_a") == job
    assert await store.owned("acme", "batch_a", ("anthropic", "async")) == job
    assert await store.owned("globex", "batch_a") is None
    assert await store.owned("acme", "batch_a", ("openai",)) is None
    assert await store.owned("acme", "batch_unknown") is None


async def test_change_writes_by_compare_and_set(store: BatchStore) -> None:
    await store.create(_job("batch_a"))
    _, before = await store.get("batch_a") or (None, 0)
    changed = await store.change("batch_a", lambda j: replace(j, status="in_progress", in_progress_at=5))
    assert changed is not None and (changed.status, changed.in_progress_at) == ("in_progress", 5)
    found = await store.get("batch_a")
    assert found is not None and found[0] == changed and found[1] > before
    assert await store.change("batch_a", lambda j: None) == changed  # nothing to change: left as it is
    assert await store.change("batch_a", lambda j: j) == changed
    assert (await store.get("batch_a") or (None, 0))[1] == found[1]  # and not written again
    assert await store.change("batch_unknown", lambda j: replace(j, total=1)) is None


async def test_concurrent_changes_all_land(store: BatchStore, js: JetStreamContext) -> None:
    await store.create(_job("batch_a"))
    other = BatchStore(js)  # a second writer, as ingress and the driver are

    async def count(writer: BatchStore, field: str) -> None:
        await writer.change("batch_a", lambda j: replace(j, **{field: getattr(j, field) + 1}))

    await asyncio.gather(*(count(store, "completed") for _ in range(5)), *(count(other, "failed") for _ in range(5)),
                         store.change("batch_a", lambda j: replace(j, status="cancelling", cancelling_at=9)))
    job = await store.owned("acme", "batch_a")
    assert job is not None and (job.completed, job.failed, job.status, job.cancelling_at) == (5, 5, "cancelling", 9)


async def test_of_tenant_newest_first_by_tenant_and_kind(store: BatchStore) -> None:
    for job in (_job("batch_1", created_at=100), _job("batch_3", created_at=300), _job("batch_2", created_at=200),
                _job("batch_2b", created_at=200), _job("batch_x", tenant="globex", created_at=400),
                _job("async_1", kind="async", created_at=500)):
        await store.create(job)
    await store.take_lease("batch_1", "driver-a", 30.0)
    assert [j.id for j in await store.of_tenant("acme", ("openai",))] == ["batch_3", "batch_2b", "batch_2", "batch_1"]
    assert [j.id for j in await store.of_tenant("acme", ("async",))] == ["async_1"]
    assert [j.id for j in await store.of_tenant("acme", ("openai", "async"))][0] == "async_1"
    assert [j.id for j in await store.of_tenant("globex", ("openai",))] == ["batch_x"]
    assert await store.of_tenant("initech", ("openai",)) == []


async def test_job_keys_leave_out_leases(store: BatchStore) -> None:
    assert await store.job_keys() == []
    await store.create(_job("batch_a"))
    await store.create(_job("batch_b"))
    await store.take_lease("batch_a", "driver-a", 30.0)
    assert sorted(await store.job_keys()) == [job_key("batch_a"), job_key("batch_b")]


async def test_delete(store: BatchStore) -> None:
    await store.create(_job("batch_a"))
    await store.create(_job("batch_b"))
    await store.delete("batch_a")
    assert await store.get("batch_a") is None
    assert await store.job_keys() == [job_key("batch_b")]
    assert [j.id for j in await store.of_tenant("acme", ("openai",))] == ["batch_b"]


async def test_one_live_lease_holder_renewed_by_it_taken_over_once_lapsed(store: BatchStore) -> None:
    assert await store.take_lease("batch_a", "driver-a", 10.0, now=1000.0)
    assert not await store.take_lease("batch_a", "driver-b", 10.0, now=1005.0)
    assert await store.take_lease("batch_a", "driver-a", 10.0, now=1008.0)  # renewed: now until 1018
    assert not await store.take_lease("batch_a", "driver-b", 10.0, now=1015.0)
    assert await _lease(store, "batch_a") == Lease(owner="driver-a", until=1018.0)
    assert await store.take_lease("batch_a", "driver-b", 10.0, now=1018.5)  # lapsed: taken over
    assert await _lease(store, "batch_a") == Lease(owner="driver-b", until=1028.5)
    assert not await store.take_lease("batch_a", "driver-a", 10.0, now=1019.0)
    assert await store.take_lease("batch_b", "driver-a", 10.0, now=1019.0)  # a lease per job


async def test_a_released_lease_can_be_taken_at_once(store: BatchStore) -> None:
    assert await store.take_lease("batch_a", "driver-a", 60.0, now=1000.0)
    await store.release_lease("batch_a")
    assert await _lease(store, "batch_a") is None
    assert await store.take_lease("batch_a", "driver-b", 60.0, now=1001.0)
    assert await _lease(store, "batch_a") == Lease(owner="driver-b", until=1061.0)
    await store.release_lease("batch_never_leased")  # nothing to release: no error


async def _lease(store: BatchStore, job_id: str) -> Lease | None:
    kv = await store.bucket()
    try:
        entry = await kv.get(LEASE_PREFIX + job_id)
    except KeyNotFoundError:  # deleted (released) or never written
        return None
    return decode(entry.value, Lease) if entry.value else None
