"""Batch jobs in the ``GW_BATCHES`` key-value bucket: one ``BatchJob`` per key ``job.<id>``, changed only by
compare-and-set, so ingress (create, cancel) and a job's driver (progress, finalising) never overwrite
each other. A driver holds its job by a lease (``lease.<id>``: owner and expiry, also compare-and-set), so
two batch replicas never drive one job; a lease not renewed is taken over.

A job belongs to its creator's tenant: another tenant's id answers ``None`` like an unknown one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from schemas import subjects
from schemas.batches import BatchJob, Kind
from schemas.errors import Conflict
from schemas.wire import Message, decode, encode

JOB_PREFIX = "job."
LEASE_PREFIX = "lease."
CAS_ATTEMPTS = 50


class Lease(Message, frozen=True, kw_only=True):
    owner: str
    until: float


def job_key(job_id: str) -> str:
    return JOB_PREFIX + job_id


class BatchStore:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.BUCKET_BATCHES)
        return self._kv

    async def create(self, job: BatchJob) -> None:
        kv = await self.bucket()
        await kv.create(job_key(job.id), encode(job))

    async def get(self, job_id: str) -> tuple[BatchJob, int] | None:
        kv = await self.bucket()
        try:
            entry = await kv.get(job_key(job_id))
        except (KeyNotFoundError, NotFoundError):
            return None
        if not entry.value:
            return None
        return decode(entry.value, BatchJob), entry.revision or 0

    async def owned(self, tenant: str, job_id: str, kinds: tuple[Kind, ...] | None = None) -> BatchJob | None:
        """The job when it is ``tenant``'s (and of one of ``kinds``), else ``None`` like an unknown id."""
        found = await self.get(job_id)
        if found is None or found[0].tenant != tenant or (kinds is not None and found[0].kind not in kinds):
            return None
        return found[0]

    async def change(self, job_id: str, change: Callable[[BatchJob], BatchJob | None]) -> BatchJob | None:
        """Apply ``change`` by compare-and-set (read again and retried when another writer came first).
        ``change`` returning ``None`` leaves the job as it is. Returns the job as it now stands."""
        kv = await self.bucket()
        for _ in range(CAS_ATTEMPTS):
            found = await self.get(job_id)
            if found is None:
                return None
            job, revision = found
            changed = change(job)
            if changed is None or changed == job:
                return job
            try:
                await kv.update(job_key(job_id), encode(changed), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return changed
        raise Conflict(f"Batch {job_id} kept changing under {CAS_ATTEMPTS} attempts; retry.", code="batch_busy")

    async def delete(self, job_id: str) -> None:
        kv = await self.bucket()
        await kv.purge(job_key(job_id))

    async def of_tenant(self, tenant: str, kinds: tuple[Kind, ...]) -> list[BatchJob]:
        """The tenant's jobs of ``kinds``, newest first (ids are time-ordered)."""
        kv = await self.bucket()
        jobs: list[BatchJob] = []
        for name in await self.job_keys():
            try:
                entry = await kv.get(name)
            except (KeyNotFoundError, NotFoundError):
                continue
            if entry.value:
                job = decode(entry.value, BatchJob)
                if job.tenant == tenant and job.kind in kinds:
                    jobs.append(job)
        return sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)

    async def job_keys(self) -> list[str]:
        """Every job's key (nats-py's ``keys(filters=)`` matches substrings: filtered here instead)."""
        kv = await self.bucket()
        try:
            names = await kv.keys()
        except NoKeysError:
            return []
        return [name for name in names if name.startswith(JOB_PREFIX)]

    async def watch(self) -> AsyncIterator[BatchJob]:
        """Every job now, then each change as it is written (what a driver follows)."""
        kv = await self.bucket()
        watcher = await kv.watch(JOB_PREFIX + ">")
        try:
            async for entry in watcher:
                if entry is None or not entry.value:  # None: the initial values are all delivered
                    continue
                try:
                    yield decode(entry.value, BatchJob)
                except msgspec.DecodeError:
                    continue
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    # -- driver leases ---------------------------------------------------------------------------------

    async def take_lease(self, job_id: str, owner: str, ttl_s: float, now: float | None = None) -> bool:
        """Hold (or renew) the lease on driving ``job_id``; False while another live owner holds it."""
        kv = await self.bucket()
        now = time.time() if now is None else now
        lease = encode(Lease(owner=owner, until=now + ttl_s))
        key = LEASE_PREFIX + job_id
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, NotFoundError):
            try:
                await kv.create(key, lease)
                return True
            except KeyWrongLastSequenceError:
                return False
        if entry.value:
            held = decode(entry.value, Lease)
            if held.owner != owner and held.until > now:
                return False
        try:
            await kv.update(key, lease, last=entry.revision)
            return True
        except KeyWrongLastSequenceError:
            return False

    async def release_lease(self, job_id: str) -> None:
        kv = await self.bucket()
        try:
            await kv.purge(LEASE_PREFIX + job_id)
        except (KeyNotFoundError, NotFoundError):
            pass
