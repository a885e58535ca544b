"""What a process derives from its config, built once per config version: the one mechanism.

A ``Derived[T]`` holds one value built from a config (``build(config) -> T``: a router, a key index,
the PII scanners...) together with the version and config it was derived for (``Built``), and only
that one: a new version replaces it. Every stage worker and ingress use it.

- ``get(version, config)``: the value for ``version``; built on the spot (on the caller's thread) when
  the version held is another one. The hot path is one string comparison.
- ``update(config, version)``: a ``LiveConfig.on_change`` callback. It builds the new version's value
  in a thread and swaps it in once ready; until then ``current`` is the previous version's ``Built``
  (a request holding an older ``Built`` keeps it). A build that raises leaves the old one in place.
- ``inputs(config)`` (optional): what the value depends on. A version whose inputs equal those of the
  value held reuses that value with the new config (no rebuild): costly values (presidio scanners,
  seconds to build) are rebuilt only when what they are built from changed.
- ``follow(live)``: build for the live config's current version now and for every new version when it
  arrives (``update``).

Two ways to read it, after what a build costs: per-version values (cheap, plain data) are read with
``get(live.version, live.current)`` and are always those of the version asked for; costly ones are read
through ``current`` (the version, config and value that go together), so a request never waits for a
build on the event loop. Thread safety: ``current`` is one immutable ``Built``, replaced by a single
assignment, so a reader on any thread sees a consistent triple; builds run on the event loop (``get``)
or in a worker thread (``update``), and a thread's build lands only if nothing was swapped in meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from schemas.config import GatewayConfig

T = TypeVar("T")

_NO_INPUTS = object()
"""The inputs of a ``Derived`` without an ``inputs`` function: equal to nothing, so every version builds."""


class LiveSource(Protocol):
    """What ``follow`` needs of the process's live config (``infra.live_config.LiveConfig``)."""

    @property
    def version(self) -> str: ...

    @property
    def current(self) -> GatewayConfig: ...

    def on_change(self, callback: Callable[[GatewayConfig, str], Awaitable[None] | None]) -> None: ...


@dataclass(frozen=True, slots=True)
class Built(Generic[T]):
    """A derived value with the config version and config it serves."""

    version: str
    config: GatewayConfig
    value: T


class Derived(Generic[T]):
    """A value derived from the config, built once per config version (see the module docstring)."""

    def __init__(self, build: Callable[[GatewayConfig], T], *,
                 inputs: Callable[[GatewayConfig], object] | None = None) -> None:
        self._build = build
        self._inputs_of = inputs
        self._built: Built[T] | None = None
        self._inputs: object = _NO_INPUTS
        self._swaps = 0  # counts swaps: a thread's build made before the latest swap is dropped

    @property
    def built(self) -> Built[T] | None:
        """What is held, if anything was derived yet."""
        return self._built

    @property
    def current(self) -> Built[T]:
        """What is held: the version, config and value that go together."""
        built = self._built
        if built is None:
            raise RuntimeError("nothing derived yet: call get() or follow() first")
        return built

    def get(self, version: str, config: GatewayConfig) -> T:
        """The value for ``version`` (whose config is ``config``), built now if another version is held."""
        built = self._built
        if built is not None and built.version == version:
            return built.value
        inputs = self._inputs_for(config)
        value = self._reusable(inputs)
        if value is None:
            value = (self._build(config),)
        return self._swap(version, config, value[0], inputs).value

    async def update(self, config: GatewayConfig, version: str) -> None:
        """Derive for a new version off the event loop and swap it in when ready (``on_change``)."""
        built = self._built
        if built is not None and built.version == version:
            return
        inputs = self._inputs_for(config)
        value = self._reusable(inputs)
        if value is not None:
            self._swap(version, config, value[0], inputs)
            return
        swaps = self._swaps
        fresh = await asyncio.to_thread(self._build, config)
        if self._swaps == swaps:  # else a newer value was swapped in meanwhile (``get``): keep that one
            self._swap(version, config, fresh, inputs)

    def follow(self, live: LiveSource) -> Derived[T]:
        """Derive for ``live``'s current version now, and for each new version as it arrives."""
        self.get(live.version, live.current)
        live.on_change(self.update)
        return self

    # -- internals --------------------------------------------------------------------------------

    def _inputs_for(self, config: GatewayConfig) -> object:
        return self._inputs_of(config) if self._inputs_of is not None else _NO_INPUTS

    def _reusable(self, inputs: object) -> tuple[T] | None:
        """The value held, if it was built from equal inputs (a 1-tuple: the value itself may be falsy)."""
        built = self._built
        if built is None or inputs is _NO_INPUTS or inputs != self._inputs:
            return None
        return (built.value,)

    def _swap(self, version: str, config: GatewayConfig, value: T, inputs: object) -> Built[T]:
        built = Built(version, config, value)
        self._built, self._inputs = built, inputs
        self._swaps += 1
        return built
