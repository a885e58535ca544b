"""Sink worker: streams every event from the durable GW_EVENTS consumer into ClickHouse, in batches
(up to ``sink_batch_rows`` or ``sink_batch_ms``), acking only after the insert, so a sink crash loses
nothing (unacked events are redelivered and de-duplicated by request_id). It is the only process that
opens the embedded store, so it also answers read-only analyst queries (``gateway sql``) over NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from faststream import AckPolicy
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from infra import bootstrap
from infra.clickhouse.readonly import ReadOnlyViolation
from schemas import subjects
from schemas.events import Event
from schemas.wire import DecodeError, decode_union
from workers.app import Hooks, main
from workers.context import WorkerContext

log = logging.getLogger("gateway.sink")


def decode_events(messages: list[Msg]) -> list[Event]:
    events: list[Event] = []
    for msg in messages:
        try:
            events.append(decode_union(msg.data, Event))
        except DecodeError:
            log.error("dropping an undecodable event on %s: %.200r", msg.subject, msg.data)
    return events


async def setup(ctx: WorkerContext) -> Hooks:
    broker, settings = ctx.broker, ctx.settings
    # chDB is not safe to call from several threads at once: one thread owns every store call.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    loop = asyncio.get_running_loop()
    store = await loop.run_in_executor(executor, bootstrap.store, settings)
    await loop.run_in_executor(executor, store.migrate)
    stop = asyncio.Event()
    consumer: list[asyncio.Task[None]] = []
    pulls: list[Any] = []

    async def consume() -> None:
        js = ctx.nc.jetstream()
        psub = await js.pull_subscribe_bind(durable=subjects.CONSUMER_SINK, stream=subjects.STREAM_EVENTS)
        pulls.append(psub)
        window = settings.sink_batch_ms / 1000
        while not stop.is_set():
            # Sleep through the window, then drain what is pending in bursts. A long-poll fetch would
            # wake this process for every event (≈ 0.5 ms CPU each at low load, on the cores the
            # request path needs); fetch() asks with no_wait first, so a burst costs one wake-up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=window)
            while True:
                try:
                    batch = await psub.fetch(settings.sink_batch_rows, timeout=0.001)
                except (TimeoutError, NatsTimeoutError):
                    break
                except Exception as exc:  # noqa: BLE001 - the broker is restarting: the next window asks again
                    log.info("sink: fetch failed (%r); trying again", exc)
                    break
                await write(batch)
                if len(batch) < settings.sink_batch_rows:
                    break

    async def write(batch: list[Msg]) -> None:
        events = decode_events(batch)
        while events:
            try:
                await loop.run_in_executor(executor, store.write, events)
                break
            except Exception:  # noqa: BLE001 - keep the events, retry: nothing is acked before insert
                log.exception("insert of %d events failed; retrying", len(events))
                await asyncio.sleep(1.0)
        for msg in batch:
            try:
                await msg.ack()
            except Exception:  # noqa: BLE001 - not acked: redelivered later, and de-duplicated
                log.info("sink: could not ack an event (broker reconnecting); it will come again")

    @broker.subscriber(subjects.SQL_QUERY, queue="sink", no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_sql(data: bytes) -> None:
        message: Any = broker.context.get_local("message")
        reply = message.raw_message.reply
        try:
            sql = str(orjson.loads(data)["sql"])
            result = await loop.run_in_executor(executor, store.query_readonly, sql)
            answer: dict[str, Any] = {"columns": result.columns, "types": result.types, "rows": result.rows}
        except ReadOnlyViolation as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the analyst gets ClickHouse's message
            answer = {"error": f"query failed: {exc}"}
        if reply:
            await ctx.nc.publish(reply, orjson.dumps(answer, default=str))

    async def start_consumer() -> None:
        consumer.append(asyncio.create_task(consume()))

    async def cleanup() -> None:
        stop.set()
        for task in consumer:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=5)
        for psub in pulls:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        await loop.run_in_executor(executor, store.close)
        executor.shutdown()

    return Hooks(after_start=start_consumer, cleanup=cleanup)


if __name__ == "__main__":
    main("sink")
