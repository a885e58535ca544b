"""The audit chain's single writer, inside the sink: GW_AUDIT entries become ``audit_log`` rows.

One order: the entries are taken from the one durable ``audit`` consumer of the GW_AUDIT stream, in
stream order, and chained in that order (``schemas/audit.py``: seq, prev_hash, hash) by one writer,
each with the actor the subject it arrived on authenticates (``schemas/audit_actor.py``: ``nats:<identity>``,
``admin-api:<name> via nats:ingress``, ``unauthenticated:<claim>`` for the bare subject of old versions):
``gateway up`` runs one sink (the embedded store can only be opened by one process), and should two
sinks share a ClickHouse server, only the one holding the writer lock (``workers/audit_lock.py``) pulls
and writes. Whenever a sink takes the lock (at start, or after another lost it), the chain's end (last
seq and hash, and the entry ids of its recent rows) is read back from the table, so the chain continues
across restarts and writers, and a redelivered entry (the writer died between insert and ack) is not
chained twice. An entry is acked only once its row is stored.

The anchor: every ``audit_anchor_minutes`` and at shutdown, the chain's latest (seq, hash) goes to the
sink's log and to ``gateway_events`` (``kind = 'audit_anchor'``); ``gateway audit verify`` checks the
chain still reaches it (rows deleted at the tail).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra.jetstream import AUDIT_LOCK_TTL_S, bursts
from schemas import subjects
from schemas.audit import AuditEntry, extend
from schemas.audit_actor import authenticated
from schemas.events import ControlAttrs, ControlEvent
from schemas.ids import uuid7
from schemas.wire import DecodeError, decode
from workers.audit_lock import WriterLock

if TYPE_CHECKING:
    from infra.clickhouse.store import AuditTail, Store

log = logging.getLogger("gateway.audit")
T = TypeVar("T")
RELEASE_WAIT_S = 1.0
"""How long a stopping writer waits to release its lock (a few ms when the broker is there)."""
RECENT_IDS = 10_000
"""Entry ids of the chain's last rows kept to skip redeliveries."""


def decode_entries(messages: list[Msg]) -> list[AuditEntry]:
    """The entries of ``messages``, each with the actor its subject authenticates
    (``schemas/audit_actor.py``), not the one its body claims."""
    entries: list[AuditEntry] = []
    for msg in messages:
        try:
            entries.append(authenticated(msg.subject, decode(msg.data, AuditEntry)))
        except DecodeError:
            log.error("dropping an undecodable audit entry: %.300r", msg.data)
    return entries


class AuditWriter:
    """See the module docstring. ``executor`` is the sink's one store thread."""

    def __init__(self, js: JetStreamContext, store: Store, executor: Executor, *, batch_rows: int,
                 window_s: float, anchor_every_s: float, source: str) -> None:
        self.js = js
        self.store = store
        self.executor = executor
        self.batch_rows = batch_rows
        self.window_s = window_s
        self.anchor_every_s = anchor_every_s
        self.source = source
        self.seq = 0
        self.hash = ""
        self.seen: dict[str, None] = {}  # insertion-ordered: the oldest ids go first
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.psub: Any = None
        self.lock = WriterLock(js, source)
        self.refreshed_at = 0.0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def start(self) -> None:
        self.psub = await self.js.pull_subscribe_bind(durable=subjects.CONSUMER_AUDIT, stream=subjects.STREAM_AUDIT)
        await self.hold()
        self.tasks = [asyncio.create_task(self._consume()), asyncio.create_task(self._anchors())]

    async def hold(self) -> bool:
        """Take or keep the writer lock (refreshed every third of its TTL); on taking it, read the chain's
        end back from the table. False: another sink writes (or the broker is away)."""
        now = time.monotonic()
        if self.lock.held and now - self.refreshed_at < AUDIT_LOCK_TTL_S / 3:
            return True
        was_held = self.lock.held
        try:
            held = await self.lock.acquire()
        except Exception as exc:  # noqa: BLE001 - the broker is restarting: asked again next window
            log.info("audit: writer lock not reachable (%r)", exc)
            return False
        if held:
            self.refreshed_at = now
            if not was_held:
                await self._read_tail()
        return held

    async def _read_tail(self) -> None:
        tail: AuditTail = await self._run(self.store.audit_tail, RECENT_IDS)
        self.seq, self.hash = tail.seq, tail.hash
        self.seen = dict.fromkeys(tail.entry_ids)
        log.info("audit chain continues after seq %d (hash %s)", self.seq, self.hash)

    async def _consume(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.window_s)
            if not self.stopping.is_set() and await self.hold():
                await self.drain()

    async def drain(self, last: bool = False) -> None:
        """Chain and store whatever is pending, in bursts (only while holding the writer lock); ``last``:
        the last pass at stop, which waits for the broker's answers (``infra/jetstream.py`` bursts)."""
        async for batch in bursts(self.psub, self.batch_rows, "audit", go_on=lambda: self.lock.held,
                                  last=last):
            await self.append(batch)

    async def append(self, batch: list[Msg]) -> None:
        entries = [e for e in decode_entries(batch) if e.entry_id not in self.seen]
        unique = list({e.entry_id: e for e in entries}.values())  # a batch may repeat an entry
        rows = extend(unique, self.seq, self.hash)
        while rows:
            try:
                await self._run(self.store.write_audit, rows)
                break
            except Exception:  # noqa: BLE001 - keep the rows, retry: nothing is acked before insert
                log.exception("audit insert of %d rows failed; retrying", len(rows))
                await asyncio.sleep(1.0)
        if rows:
            self.seq, self.hash = rows[-1].seq, rows[-1].hash
            for row in rows:
                self.seen[row.entry_id] = None
            while len(self.seen) > RECENT_IDS:
                del self.seen[next(iter(self.seen))]
        for msg in batch:
            try:
                await msg.ack()
            except Exception:  # noqa: BLE001 - redelivered later, and skipped by its entry id
                log.info("audit: could not ack an entry (broker reconnecting); it will come again")

    async def _anchors(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.anchor_every_s)
            if not self.stopping.is_set():
                await self.anchor("periodic")

    async def anchor(self, reason: str) -> None:
        """Write the chain's latest (seq, hash) to the log and to ``gateway_events`` (the writer only)."""
        if self.seq == 0 or not self.lock.held:
            return
        log.info("audit anchor (%s): seq %d hash %s", reason, self.seq, self.hash)
        event = ControlEvent(event_id=uuid7(), ts=time.time(), kind="audit_anchor", subject=str(self.seq),
                             to_state=self.hash, reason=reason, source=self.source,
                             attrs=ControlAttrs(audit_seq=self.seq, audit_hash=self.hash))
        try:
            await self._run(self.store.write, [event])
        except Exception:  # noqa: BLE001 - the log line above is the anchor of record then
            log.exception("audit anchor seq %d could not be written to gateway_events", self.seq)

    async def stop(self) -> None:
        """Stop pulling, store what the broker already sent (a last pull that waits for its answer), write
        the shutdown anchor."""
        self.stopping.set()
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=5)
        if self.psub is not None and self.lock.held:
            await self.drain(last=True)
        if self.psub is not None:
            with contextlib.suppress(Exception):
                await self.psub.unsubscribe()
        await self.anchor("shutdown")
        # not released (the broker is gone too, as when the whole gateway was killed): it expires; a
        # stopping sink does not wait the request's full timeout for that
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lock.release(), timeout=RELEASE_WAIT_S)
