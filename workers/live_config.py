"""What a worker derives from the live config (``infra/live_config.py``): ``Derived`` keeps a costly
value (a PII scanner) paired with the config it was built from, rebuilt in a thread only when its
inputs change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from schemas.config import GatewayConfig

T = TypeVar("T")


class Derived(Generic[T]):
    """Something a worker derives from the config that is costly to build (a PII scanner: presidio
    takes a second or more), kept paired with the config it was built from.

    ``update`` (an ``on_change`` callback) rebuilds it in a thread only when ``inputs`` of the config
    changed, and swaps the pair once it is ready: until then, and for requests already holding the old
    pair, the old one serves. A build that fails raises (LiveConfig logs it) and the old pair stays."""

    def __init__(self, config: GatewayConfig, inputs: Callable[[GatewayConfig], object],
                 build: Callable[[GatewayConfig], T]) -> None:
        self._inputs_of = inputs
        self._build = build
        self._inputs = inputs(config)
        self.current: tuple[GatewayConfig, T] = (config, build(config))

    async def update(self, config: GatewayConfig, _version: str = "") -> None:
        inputs = self._inputs_of(config)
        if inputs == self._inputs:
            self.current = (config, self.current[1])
            return
        value = await asyncio.to_thread(self._build, config)
        self.current, self._inputs = (config, value), inputs
