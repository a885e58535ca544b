"""Sink worker: streams every event from the durable GW_EVENTS consumer into ClickHouse, in batches
(up to ``sink_batch_rows`` or ``sink_batch_ms``), acking only after the insert, so a sink crash loses
nothing (unacked events are redelivered and de-duplicated by request_id). It is the only process that
opens the embedded store, so it also answers read-only analyst queries (``gateway sql``) over NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson
from faststream import AckPolicy
from nats.aio.msg import Msg

from infra import bootstrap
from infra.audit_log import record
from infra.clickhouse.readonly import ReadOnlyViolation
from infra.cpu_priority import run_below
from infra.jetstream import drain_in_windows
from infra.nats_identity import identity
from schemas import subjects
from schemas.audit_actor import nats_actor
from schemas.audit_detail import block_entry
from schemas.events import Event, RequestCompleted
from schemas.wire import DecodeError, decode_union
from workers.app import main
from workers.audit_writer import AuditWriter
from workers.context import WorkerContext
from workers.sink_metrics import SinkMetrics, newly_written
from workers.trace_export import TraceExport
from workers.worker import Worker

if TYPE_CHECKING:
    from infra.clickhouse.store import Store

log = logging.getLogger("gateway.sink")

SINK_NICENESS = 5


def decode_events(messages: list[Msg]) -> list[Event]:
    events: list[Event] = []
    for msg in messages:
        try:
            events.append(decode_union(msg.data, Event))
        except DecodeError as exc:
            # never the payload: a record may carry a body, and logs land under the data dir
            headers = msg.headers or {}
            log.error("dropping an undecodable event on %s (%d bytes, request %s): %s", msg.subject, len(msg.data),
                      headers.get("Nats-Msg-Id", "unknown"), type(exc).__name__)
    return events


class SinkWorker(Worker):
    name = "sink"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        # chDB is not safe to call from several threads at once: one thread owns every store call.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._store: Store | None = None
        self.stopping = asyncio.Event()
        self.consumer: asyncio.Task[None] | None = None
        self.pulls: list[Any] = []
        self.audit: AuditWriter | None = None
        self.identity = identity(ctx.settings)  # the NATS identity its audit entries are published as
        self.metrics = SinkMetrics(ctx.metrics)
        self.traces = TraceExport.from_environment()  # None unless the OTEL_* variables ask for traces

    @property
    def store(self) -> Store:
        assert self._store is not None, "the store is opened in prepare()"
        return self._store

    async def prepare(self) -> None:
        """Open and migrate the store, and answer analyst queries once the broker starts. The sink runs a
        little below the request path on the CPU (``SINK_NICENESS``): its inserts come in bursts that can
        wait a few milliseconds, the callers waiting for answers cannot."""
        run_below(SINK_NICENESS)
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(self.executor, bootstrap.store, self.ctx.settings)
        await loop.run_in_executor(self.executor, self.store.migrate)
        self.ctx.broker.subscriber(subjects.SQL_QUERY, queue="sink", no_reply=True,
                                   ack_policy=AckPolicy.MANUAL)(self.on_sql)

    async def after_start(self) -> None:
        settings = self.ctx.settings
        self.audit = AuditWriter(self.ctx.nc.jetstream(), self.store, self.executor,
                                 batch_rows=settings.sink_batch_rows, window_s=settings.sink_batch_ms / 1000,
                                 anchor_every_s=settings.audit_anchor_minutes * 60, source=f"sink-{os.getpid()}")
        await self.audit.start()
        self.consumer = asyncio.create_task(self.consume())

    async def consume(self) -> None:
        settings = self.ctx.settings
        js = self.ctx.nc.jetstream()
        psub = await js.pull_subscribe_bind(durable=subjects.CONSUMER_SINK, stream=subjects.STREAM_EVENTS)
        self.pulls.append(psub)
        await drain_in_windows(psub, settings.sink_batch_rows, "sink", settings.sink_batch_ms / 1000,
                               self.stopping, self.write)

    async def write(self, batch: list[Msg]) -> None:
        loop = asyncio.get_running_loop()
        events = decode_events(batch)
        while events:
            try:
                await self.audit_blocks(events)
                written = await loop.run_in_executor(self.executor, self.store.write, events)
                fresh = newly_written(events, written)
                self.metrics.written(events, written, fresh)
                if self.traces is not None:
                    for record in fresh:
                        self.traces.record(record)
                break
            except Exception:  # noqa: BLE001 - keep the events, retry: nothing is acked before insert
                log.exception("insert of %d events failed; retrying", len(events))
                await asyncio.sleep(1.0)
        for msg in batch:
            try:
                await msg.ack()
            except Exception:  # noqa: BLE001 - not acked: redelivered later, and de-duplicated
                log.info("sink: could not ack an event (broker reconnecting); it will come again")

    async def audit_blocks(self, events: list[Event]) -> None:
        """Record every guardrail block of the batch in the audit log before the batch is stored, so a
        block is audited even if the sink dies after the insert (a redelivery is recorded once: the
        entry's id is the request's)."""
        js = self.ctx.nc.jetstream()
        actor = nats_actor(self.identity)
        entries = [e for ev in events
                   if isinstance(ev, RequestCompleted) and (e := block_entry(ev, actor)) is not None]
        if entries:  # published together (the stream orders them), not one round trip after another
            await asyncio.gather(*(record(js, entry, self.identity) for entry in entries))

    async def on_sql(self, data: bytes) -> None:
        message: Any = self.ctx.broker.context.get_local("message")
        reply = message.raw_message.reply
        try:
            sql = str(orjson.loads(data)["sql"])
            result = await asyncio.get_running_loop().run_in_executor(self.executor, self.store.query_readonly, sql)
            answer: dict[str, Any] = {"columns": result.columns, "types": result.types, "rows": result.rows}
        except ReadOnlyViolation as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the analyst gets ClickHouse's message
            answer = {"error": f"query failed: {exc}"}
        if reply:
            await self.ctx.nc.publish(reply, orjson.dumps(answer, default=str))

    async def _consumer_done(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.consumer, timeout=5)

    async def cleanup(self) -> None:
        """Stop both consumers together (each ends with a last pull that waits for the broker's answer),
        then close the store."""
        self.stopping.set()
        stops = [self._consumer_done()] + ([self.audit.stop()] if self.audit is not None else [])
        await asyncio.gather(*stops)
        for psub in self.pulls:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        await asyncio.get_running_loop().run_in_executor(self.executor, self.store.close)
        self.executor.shutdown()
        if self.traces is not None:  # the spans still queued, sent (the exporter bounds its own wait)
            await asyncio.to_thread(self.traces.shutdown)


setup = SinkWorker.setup


if __name__ == "__main__":
    main("sink")
