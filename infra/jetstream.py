"""JetStream streams and consumers: declared once, here.

GW_REQ   work queue holding each accepted request until the chain has answered it (end-to-end ack).
GW_EVENTS file-backed stream of every stage event, consumed by the sink's durable consumer.
GW_AUDIT  file-backed stream of audit entries (every control-plane change and guardrail block): its one
          order is the audit chain's; the sink's ``audit`` consumer is the chain's single writer. It
          captures ``gw.audit.>`` (each publisher on ``gw.audit.by.<identity>``) and the bare ``gw.audit``
          of earlier versions; declaring over an older deployment adds the subject to the stream and turns
          the consumer's one filter into both, keeping its ack position (a stream and a durable
          consumer's filters may be updated in place; tests/unit/infra/test_jetstream.py).
GW_CONFIG key-value bucket: the active config (key ``active``), watched by every worker (hot reload).
GW_BREAKERS key-value bucket: each target's circuit-breaker state, shared by every routing replica.
GW_KEYS   key-value bucket: the virtual keys (``key.<id>``), watched by every process that authenticates.
GW_LIMITS key-value bucket: team and tenant policies (``team.<id>``, ``tenant.<id>``), watched likewise.
GW_AUDIT_WRITER key-value bucket: the audit chain's writer lock (``workers/audit_lock.py``), entries expire.
GW_BATCHES key-value bucket: batch jobs (``job.<id>``) and their drivers' leases (``lease.<id>``).
GW_BATCH_RESULTS file-backed stream of each batch line's answer, one per line (``workers/batch.py``).
GW_LEDGER key-value bucket: each limited scope's spend, holds and rate window (``infra/ledger.py``).
GW_FILES  object store: the Files API's uploads (``infra/file_store.py``), owner and purpose in each object's headers.
The ``ledger`` durable consumer: the records not settled where their request ended, settled by the policy replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from infra.file_store import FILES_BUCKET
from infra.settings import Settings
from schemas import subjects

REQUESTS_STREAM = StreamConfig(
    name=subjects.STREAM_REQUESTS,
    subjects=[subjects.REQ_REDACT, subjects.REQ_BATCH],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    max_age=3600.0,
    duplicate_window=120.0,
    discard=DiscardPolicy.NEW,
)

EVENTS_STREAM = StreamConfig(
    name=subjects.STREAM_EVENTS,
    subjects=[subjects.EVT_ALL],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_age=7 * 24 * 3600.0,
    max_bytes=4 * 1024**3,
    discard=DiscardPolicy.OLD,
)

AUDIT_STREAM = StreamConfig(
    name=subjects.STREAM_AUDIT,
    subjects=list(subjects.AUDIT_SUBJECTS),
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_age=30 * 24 * 3600.0,
    duplicate_window=120.0,
    discard=DiscardPolicy.OLD,
)


BATCH_RESULTS_STREAM = StreamConfig(
    name=subjects.STREAM_BATCH_RESULTS,
    subjects=[f"{subjects.BATCH_RESULT_PREFIX}.>"],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_msgs_per_subject=1,  # one answer per line: a second is refused by its expected subject sequence
    max_age=31 * 24 * 3600.0,  # a job's results outlive its window; its output files are what callers keep
    discard=DiscardPolicy.OLD,
)
"""Each batch line's answer (sealed), until its job's output and error files are written."""

CONFIG_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_CONFIG, history=16, storage=StorageType.FILE,
                               description="the active gateway config (hot reload)")
BREAKERS_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_BREAKERS, history=1, storage=StorageType.FILE,
                                 description="circuit-breaker state per target")
KEYS_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_KEYS, history=8, storage=StorageType.FILE,
                             description="virtual keys (hashes of their secrets only)")
LIMITS_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_LIMITS, history=8, storage=StorageType.FILE,
                               description="team and tenant limits and access rules")
LEDGER_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_LEDGER, history=1, storage=StorageType.FILE,
                               description="spend, holds and rate windows per limited scope (compare-and-set)")
BATCHES_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_BATCHES, history=1, storage=StorageType.FILE,
                                description="batch jobs (compare-and-set) and their drivers' leases")
AUDIT_LOCK_TTL_S = 15.0
"""How long the audit writer lock outlives a sink that stopped refreshing it (died, or stalled)."""
AUDIT_WRITER_BUCKET = KeyValueConfig(bucket=subjects.BUCKET_AUDIT_WRITER, history=1, ttl=AUDIT_LOCK_TTL_S,
                                     storage=StorageType.FILE, description="the audit chain's writer lock")


CACHE_MAX_AGE_S = 30 * 86400.0
"""No cached answer outlives this (the largest ``cache.ttl_s``); each request checks its own ttl."""


def cache_stream(settings: Settings) -> StreamConfig:
    """The response cache's bucket (``GW_CACHE``, ``stages/cache.py``), made as its stream so that past
    its size limit the *oldest* entries are dropped (a key-value bucket refuses new ones)."""
    return _dropping_oldest(subjects.BUCKET_CACHE, settings.cache_max_bytes,
                            "the response cache: answers with placeholders, never PII")


def cache_index_stream(settings: Settings) -> StreamConfig:
    """The semantic cache's index (``GW_CACHE_INDEX``, ``stages/semantic_cache.py``): each record a
    question's vector and words (redacted) under its answer's key; every provider replica watches it into
    memory. About 2 KB a record: the default 64 MiB holds some 30,000; past it the oldest go."""
    return _dropping_oldest(subjects.BUCKET_CACHE_INDEX, settings.cache_index_max_bytes,
                            "the semantic cache's index: vectors and redacted words of cached questions")


def _dropping_oldest(bucket: str, max_bytes: int, description: str) -> StreamConfig:
    """A key-value bucket's stream, one value a key, whose oldest values go past ``max_bytes``."""
    return StreamConfig(
        name=subjects.kv_stream(bucket),
        subjects=[subjects.kv_keys(bucket)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs_per_subject=1,
        max_bytes=max_bytes,
        max_age=CACHE_MAX_AGE_S,
        discard=DiscardPolicy.OLD,
        allow_rollup_hdrs=True,
        deny_delete=False,
        allow_direct=True,
        description=description,
    )


def redaction_consumer(settings: Settings) -> ConsumerConfig:
    """A pull consumer shared by every process hosting the first stage: each takes only what it can work
    on now (``workers/intake.py``), so nothing waits on a delivery clock in a busy process."""
    return ConsumerConfig(
        durable_name=subjects.CONSUMER_REDACT,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
        max_waiting=4096,
        filter_subject=subjects.REQ_REDACT,
    )


def redaction_batch_consumer(settings: Settings) -> ConsumerConfig:
    """The batch lane (``gw.req.batch``): the same first hop, its own consumer, pulled only by the batch
    lane's stage processes (``GATEWAY_LANE=batch``), its concurrency bounded apart from interactive
    requests (``max_ack_pending``)."""
    return ConsumerConfig(
        durable_name=subjects.CONSUMER_REDACT_BATCH,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.batch_lane_max,
        max_waiting=512,
        filter_subject=subjects.REQ_BATCH,
    )


def sink_consumer() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=subjects.CONSUMER_SINK,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_ack_pending=50_000,
        filter_subject=subjects.EVT_ALL,
    )


def audit_consumer() -> ConsumerConfig:
    """The sink's chain writer: one durable, pulled by the one sink, acked once its rows are stored. Its
    ack position plus the table's last row (read back at start) continue the chain across restarts."""
    return ConsumerConfig(
        durable_name=subjects.CONSUMER_AUDIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_ack_pending=10_000,
        filter_subjects=list(subjects.AUDIT_SUBJECTS),
    )


def ledger_consumer() -> ConsumerConfig:
    """The records of requests holding reservations that were not settled where they ended
    (``gw.evt.governed.<stage>``), for settlement: one durable shared by every policy replica (each
    record is settled by one of them), explicitly acked once settled. New records only: what was
    recorded before the consumer existed held nothing."""
    return ConsumerConfig(
        durable_name=subjects.CONSUMER_LEDGER,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=10.0,
        max_ack_pending=20_000,
        max_waiting=512,
        filter_subject=subjects.EVT_GOVERNED_ALL,
    )


async def declare(js: JetStreamContext, settings: Settings) -> None:
    """Create or update the streams and durable consumers; safe to call from every process."""
    for config in (REQUESTS_STREAM, EVENTS_STREAM, AUDIT_STREAM, BATCH_RESULTS_STREAM, cache_stream(settings),
                   cache_index_stream(settings)):
        try:
            await js.stream_info(config.name or "")
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
    with contextlib.suppress(NotFoundError):  # a push consumer from an earlier version cannot become pull
        existing = await js.consumer_info(subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT)
        if existing.config.deliver_subject:
            await js.delete_consumer(subjects.STREAM_REQUESTS, subjects.CONSUMER_REDACT)
    await js.add_consumer(subjects.STREAM_REQUESTS, redaction_consumer(settings))
    await js.add_consumer(subjects.STREAM_REQUESTS, redaction_batch_consumer(settings))
    await js.add_consumer(subjects.STREAM_EVENTS, sink_consumer())
    await _ensure_consumer(js, subjects.STREAM_EVENTS, ledger_consumer())
    await js.add_consumer(subjects.STREAM_AUDIT, audit_consumer())
    for bucket in (CONFIG_BUCKET, BREAKERS_BUCKET, KEYS_BUCKET, LIMITS_BUCKET, LEDGER_BUCKET, AUDIT_WRITER_BUCKET,
                   BATCHES_BUCKET):
        await js.create_key_value(bucket)
    await js.create_object_store(subjects.BUCKET_FILES, config=FILES_BUCKET)


async def _ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable once; later calls leave it as it is (its deliver policy only applies at creation)."""
    try:
        await js.consumer_info(stream, config.durable_name or "")
    except NotFoundError:
        await js.add_consumer(stream, config)


log = logging.getLogger("gateway")

NO_WAIT_FETCH_S = 0.001
"""How long a window's pull waits for the broker's answer: a no_wait pull is answered at once, and an
answer that lands later (the process was busy past this millisecond) waits in the subscription's
queue for the next window's pull, which takes it first."""
LAST_FETCH_S = 0.25
"""At stop there is no next window: what the broker sent after an earlier pull gave up would stay
delivered and unacked, and come again only after the consumer's ack wait (30 s), to another process.
So the last pass pulls until one pull has waited this long for nothing (``LAST_PASS_S`` at most in
all): the idle cost of every stop."""
LAST_PASS_S = 2.0


async def bursts(psub: JetStreamContext.PullSubscription, rows: int, who: str,
                 go_on: Callable[[], bool] = lambda: True, *, last: bool = False) -> AsyncIterator[list[Msg]]:
    """What a pull consumer holds pending now, in batches of up to ``rows``, while ``go_on()``: one
    wake-up per burst (``fetch`` asks with no_wait first; a long poll would wake the process for every
    message). Ends at the first short, empty or failed fetch (the broker restarting: the caller's next
    window asks again).

    ``last``: the last pass at stop. Each pull waits ``LAST_FETCH_S``, and only a pull that waited that
    long for nothing ends the pass: a short or empty batch does not, because nats-py hands back the
    status replies to earlier, abandoned pulls as an empty batch, ahead of the messages that answered
    them (tests/unit/infra/test_jetstream.py)."""
    timeout = LAST_FETCH_S if last else NO_WAIT_FETCH_S
    deadline = time.monotonic() + LAST_PASS_S
    while go_on():
        try:
            batch = await psub.fetch(rows, timeout=timeout)
        except (TimeoutError, NatsTimeoutError):
            return
        except Exception as exc:  # noqa: BLE001 - the broker is restarting: the next window asks again
            if last:
                log.info("%s: last fetch at stop failed (%r): the broker is away; what it holds waits for"
                         " the next process", who, exc)
            else:
                log.info("%s: fetch failed (%r); trying again", who, exc)
            return
        if batch:
            yield batch
        if last and time.monotonic() < deadline:
            continue
        if len(batch) < rows:
            return


async def drain_in_windows(psub: JetStreamContext.PullSubscription, rows: int, who: str, window_s: float,
                           stopping: asyncio.Event, handle: Callable[[list[Msg]], Awaitable[None]]) -> None:
    """Until ``stopping``: sleep through a window, then ``handle`` what is pending in bursts (a long-poll
    fetch would wake the process for every message). At stop, a last pass (``bursts(last=True)``) that
    waits for the broker's answers, so what it already sent is handled here, not 30 s later elsewhere."""
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=window_s)
        if stopping.is_set():
            break
        async for batch in bursts(psub, rows, who):
            await handle(batch)
    async for batch in bursts(psub, rows, who, last=True):
        await handle(batch)
