"""Running stage workers in one process: connect, set every stage up (models loaded, warmed), subscribe,
answer readiness pings, serve until SIGTERM, drain.

A process hosts one stage worker (``python -m workers.policy``) or several (``python -m workers.host
redaction policy ...``): each stage is still its own subscriber on its own subject with its own queue
group; they share the connection, the live config, the leases and the confirmation inbox
(``WorkerContext``). Readiness is per stage: a stage answers on ``gw.ping.<stage>`` only once its
subscriptions are live and its models are loaded, so "the chain is ready" means a request can travel it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence

import orjson
from nats.aio.msg import Msg

from infra import bootstrap
from infra.cpu_priority import run_below
from infra.key_directory import LiveKeyDirectory
from infra.logs import setup_logging
from infra.metrics_exposition import answer_scrapes, process_name
from infra.tasks import cancel
from schemas import subjects
from workers.context import WorkerContext
from workers.worker import Worker

log = logging.getLogger("gateway.worker")


Setup = Callable[[WorkerContext], Awaitable[Worker]]
"""A worker module's ``setup``: its worker class's ``Worker.setup`` (built, then prepared)."""

STAGES = ("redaction", "policy", "routing", "provider", "output_filter")
GC_YOUNG_THRESHOLD = 20_000
BATCH_LANE_NICENESS = 19
"""The batch lane's processes (its stage hosts and the batch driver) run at the lowest CPU priority: on
a busy machine the kernel runs every interactive process first, and batch work takes what is left."""


def lower_priority(lane: str) -> None:
    """Run this process at the batch lane's CPU priority (niceness 19, ``SCHED_IDLE``: it runs only on a
    CPU no interactive process wants) when it serves the batch lane."""
    if lane == "batch":
        run_below(BATCH_LANE_NICENESS, idle=True)


def setup_of(stage: str) -> Setup:
    module = importlib.import_module(f"workers.{stage}")
    setup: Setup = module.setup
    return setup


async def serve(name: str, stages: Sequence[str]) -> None:
    """Host ``stages`` (names from ``STAGES``, or ``sink``) in this process until SIGTERM."""
    settings = bootstrap.settings()
    setup_logging(settings.log_level)
    workers: list[Worker] = []

    async def reconnected() -> None:
        ctx.reconnected_at = time.time()
        for worker in workers:
            await worker.reconnected()

    began = time.perf_counter()
    lower_priority(settings.lane)
    broker = bootstrap.broker(settings, name, reconnected_cb=reconnected)
    live = await bootstrap.live_config(settings, name) if set(stages) - {"sink"} else None
    keys = await bootstrap.key_directory(settings, live, name) if live is not None else None
    ctx = WorkerContext(broker, settings, live, name, stages=list(stages), key_directory=keys)
    took: list[str] = []
    for stage in stages:
        stage_began = time.perf_counter()
        workers.append(await setup_of(stage)(ctx))
        took.append(f"{stage} {time.perf_counter() - stage_began:.1f}s")
    # Everything loaded so far (presidio, spaCy's model, the config) lives as long as the process: keep it
    # out of the garbage collector's scans, which would otherwise walk millions of model objects in every
    # full collection (pauses of hundreds of milliseconds on the request path).
    gc.collect()
    gc.freeze()
    # A request's objects mostly die young by reference counting; collecting the young generation every
    # 700 net allocations (the default) walked the objects of every request in flight about once per hop.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    await broker.start()
    nc = ctx.nc
    await ctx.start()
    for worker in workers:
        await worker.after_start()

    async def pong(msg: Msg) -> None:
        if msg.reply:
            await nc.publish(msg.reply, b"")

    ctx.load.start()
    await answer_scrapes(nc, process_name(name), registry=ctx.metrics)
    for stage in stages:  # every stage is set up and subscribed: it may now say it is ready
        await nc.subscribe(subjects.ping_subject(stage, settings.lane), queue=stage, cb=pong)
    await nc.flush()  # subscriptions are live before we say we are ready
    for stage in stages:
        await nc.publish(subjects.CTL_READY, orjson.dumps({"name": stage, "process": name, "pid": os.getpid()}))
    log.info("%s ready in %.1fs since start-up (%s%s)", name, time.perf_counter() - began, ", ".join(took),
             "; batch lane" if settings.lane == "batch" else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats = asyncio.create_task(log_stats(ctx, settings.stats_every_s)) if settings.stats_every_s > 0 else None
    await stop.wait()
    log.info("%s stopping", name)
    await cancel(stats)
    try:
        await asyncio.wait_for(shut_down(ctx, workers), SHUTDOWN_WITHIN_S)
    except TimeoutError:
        # a step waited on a broker that is gone (its parent was killed with it): what this process
        # still holds is unacked and comes back to another one; nothing here is worth waiting longer for
        log.warning("%s: stopping took over %.0fs; exiting now", name, SHUTDOWN_WITHIN_S)
        logging.shutdown()
        os._exit(0)


SHUTDOWN_WITHIN_S = 12.0
"""The whole shutdown's bound (the supervisor's own stop waits longer before it kills)."""


async def shut_down(ctx: WorkerContext, workers: list[Worker]) -> None:
    """Take nothing new, finish what is in hand (unless the broker is gone: then it cannot be finished
    and is redelivered elsewhere), stop every part."""
    nc = ctx.nc
    if nc.is_connected:
        for worker in workers:
            await worker.drain()
    else:
        log.info("%s: the broker is gone; what is in hand will be redelivered", ctx.name)
    for worker in workers:
        await worker.cleanup()
    await ctx.load.stop()
    if nc.is_connected:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), timeout=5)
    await ctx.stop()
    # A watcher's close can wait on a reconnection that never comes: each stop gets a bound.
    if isinstance(ctx.key_directory, LiveKeyDirectory):
        await stop_within(ctx.key_directory.stop(), "key directory")
    if ctx.live_config is not None:
        await stop_within(ctx.live_config.stop(), "live config")
    with contextlib.suppress(Exception):
        await stop_within(ctx.broker.stop(), "broker connection")


STOP_WITHIN_S = 3.0


async def stop_within(stopping: Awaitable[None], what: str) -> None:
    """Await ``stopping`` for at most ``STOP_WITHIN_S``; past that, log and go on with the shutdown."""
    try:
        await asyncio.wait_for(stopping, STOP_WITHIN_S)
    except TimeoutError:
        log.warning("stopping the %s took over %.0fs (broker gone?); going on", what, STOP_WITHIN_S)


async def log_stats(ctx: WorkerContext, every_s: float) -> None:
    """One line of what the process holds, every ``every_s`` (``GATEWAY_STATS_EVERY_S``): a leak shows."""
    while True:
        await asyncio.sleep(every_s)
        log.info("%s stats: %s", ctx.name, ctx.stats())


def main(name: str, stages: Sequence[str] | None = None) -> None:
    try:
        import uvloop

        uvloop.run(serve(name, stages or [name]))
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(serve(name, stages or [name]))
