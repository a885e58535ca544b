"""Running one worker process: connect, declare subscribers, flush, serve until SIGTERM, drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from faststream.nats import NatsBroker

from infra import bootstrap
from infra.logs import setup_logging
from infra.settings import Settings
from schemas import subjects

log = logging.getLogger("gateway.worker")



@dataclass(frozen=True)
class Hooks:
    """What a worker's setup may ask for besides its subscribers."""

    after_start: Callable[[], Awaitable[None]] | None = None
    cleanup: Callable[[], Awaitable[None]] | None = None


Setup = Callable[[NatsBroker, Settings], Awaitable[Hooks]]


async def serve(name: str, setup: Setup) -> None:
    """``setup`` registers the subscribers (before start) and returns its hooks."""
    settings = bootstrap.settings()
    setup_logging(settings.log_level)
    broker = bootstrap.broker(settings, name)
    hooks = await setup(broker, settings)
    await broker.start()
    assert broker.connection is not None
    await broker.connection.flush()  # subscriptions are live before we say we are ready
    if hooks.after_start is not None:
        await hooks.after_start()
    await broker.connection.publish(subjects.CTL_READY, orjson.dumps({"name": name, "pid": os.getpid()}))
    log.info("%s ready", name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s stopping", name)
    if hooks.cleanup is not None:
        await hooks.cleanup()
    with contextlib.suppress(Exception):
        # finish in-flight handlers, flush what they published
        await asyncio.wait_for(broker.connection.drain(), timeout=5)
    with contextlib.suppress(Exception):
        await broker.stop()


def main(name: str, setup: Setup) -> None:
    try:
        import uvloop

        uvloop.run(serve(name, setup))
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(serve(name, setup))
