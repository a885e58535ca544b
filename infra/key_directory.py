"""The live key directory of one process: the config file's keys plus the ``GW_KEYS`` and ``GW_LIMITS``
buckets, watched (a KV watch pushes each change within milliseconds), as one ``KeyDirectory``.

``get()`` is the directory of now: rebuilt when the config version or either bucket changed since the
last call (dict building over the keys), else the same object. A revoked key is refused as soon as the
watch delivers the change; an expired one at the first lookup past its ``expires_at``
(``KeyDirectory.lookup`` compares with the time it is given).

Like ``LiveConfig``, it has its own nats-py connection (the control plane never competes with the hot
path); after a reconnect, or a watcher that fails, each watcher is opened anew and the bucket's whole
content is read again (a deletion missed meanwhile is not kept). A bucket that does not exist yet
(``gateway up`` declares them) is retried every second; meanwhile the config's keys still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Protocol

import msgspec
from nats.aio.client import Client as NatsClient

from infra import nats_connect
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.governance import KeyDirectory, LevelPolicy, VirtualKey
from schemas.wire import decode

log = logging.getLogger("gateway.keys")


class ConfigLike(Protocol):
    @property
    def current(self) -> GatewayConfig: ...

    @property
    def version(self) -> str: ...


def config_directory(config: GatewayConfig) -> KeyDirectory:
    """The directory of the config file's keys alone (tools, tests, a process without the buckets)."""
    return KeyDirectory(config_keys=[k.virtual() for k in config.keys], levels=config.governance.level_policies())


class StaticKeys:
    """The config's keys only, following its version: what a process without NATS uses."""

    def __init__(self, config: ConfigLike) -> None:
        self.config = config
        self._built: tuple[str, KeyDirectory] | None = None

    def get(self) -> KeyDirectory:
        version = self.config.version
        if self._built is None or self._built[0] != version:
            self._built = (version, config_directory(self.config.current))
        return self._built[1]

    async def stop(self) -> None:
        return None


class _Bucket:
    """One watched bucket's entries, by KV key (decoded), and its watch task."""

    def __init__(self, owner: LiveKeyDirectory, name: str, type_: type[VirtualKey] | type[LevelPolicy]) -> None:
        self.owner = owner
        self.name = name
        self.type = type_
        self.entries: dict[str, VirtualKey | LevelPolicy] = {}
        self.watcher: Any = None  # nats-py's KeyWatcher (untyped)
        self.loaded = asyncio.Event()

    async def close(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def run(self) -> None:
        while not self.owner.stopping:
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a missing bucket or a broker hiccup: try again
                log.debug("watch of %s failed (%r); retrying", self.name, exc)
                await self.close()
                await asyncio.sleep(1.0)

    async def _watch_once(self) -> None:
        nc = self.owner.nc
        kv = await nc.jetstream().key_value(self.name)
        watcher: Any = await kv.watchall()
        self.watcher = watcher
        fresh: dict[str, VirtualKey | LevelPolicy] | None = {}  # the whole content, until caught up
        while True:
            try:
                # a plain queue get (see LiveConfig._watch_loop: wait_for can swallow a cancellation)
                entry = await watcher.__anext__()
            except StopAsyncIteration:  # stopped (a reconnect): open anew
                await self.close()
                return
            target = fresh if fresh is not None else self.entries
            if entry is None:  # caught up: the bucket's content replaces what was known
                if fresh is not None:
                    self.entries, fresh = fresh, None
                    self.loaded.set()
                    self.owner.changed()
                continue
            if entry.operation is not None or not entry.value:  # deleted or purged
                target.pop(entry.key, None)
            else:
                try:
                    target[entry.key] = decode(entry.value, self.type)
                except msgspec.DecodeError as exc:
                    log.error("ignoring %s/%s revision %s: %s", self.name, entry.key, entry.revision, exc)
                    continue
            if fresh is None:
                self.owner.changed()


class LiveKeyDirectory:
    """The directory of now, for a process that authenticates or resolves keys (see the module doc)."""

    def __init__(self, config: ConfigLike, name: str) -> None:
        self.config = config
        self.name = name
        self.stopping = False
        self._nc: NatsClient | None = None
        self._generation = 0
        self._built: tuple[str, int, KeyDirectory] | None = None
        self._keys = _Bucket(self, subjects.BUCKET_KEYS, VirtualKey)
        self._levels = _Bucket(self, subjects.BUCKET_LIMITS, LevelPolicy)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def nc(self) -> NatsClient:
        assert self._nc is not None, "key directory not started"
        return self._nc

    def changed(self) -> None:
        self._generation += 1

    def get(self) -> KeyDirectory:
        version, generation = self.config.version, self._generation
        built = self._built
        if built is None or built[0] != version or built[1] != generation:
            directory = KeyDirectory(
                config_keys=[k.virtual() for k in self.config.current.keys],
                kv_keys=[k for k in self._keys.entries.values() if isinstance(k, VirtualKey)],
                # the file's team and tenant rules, then the bucket's (a bucket entry wins)
                levels=[*self.config.current.governance.level_policies(),
                        *(p for p in self._levels.entries.values() if isinstance(p, LevelPolicy))])
            self._built = built = (version, generation, directory)
        return built[2]

    async def start(self, nats_url: str, *, wait_s: float = 5.0) -> None:
        """Connect, watch both buckets, and wait (up to ``wait_s``) until both were read once."""
        self._nc = await nats_connect.connect(nats_url, f"{self.name}-{os.getpid()}-keys",
                                              reconnected=self._reconnected)
        self._tasks = [asyncio.create_task(bucket.run(), name=f"{self.name}-watch-{bucket.name}")
                       for bucket in (self._keys, self._levels)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(self._keys.loaded.wait(), self._levels.loaded.wait()), wait_s)
        if not (self._keys.loaded.is_set() and self._levels.loaded.is_set()):
            log.warning("%s: the key buckets could not be read within %.0fs; serving the config's keys "
                        "until they can", self.name, wait_s)

    async def _reconnected(self) -> None:
        for bucket in (self._keys, self._levels):
            await bucket.close()

    async def stop(self) -> None:
        self.stopping = True
        pending = set(self._tasks)
        while pending:  # cancel until done (see LiveConfig.stop)
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        self._tasks = []
        for bucket in (self._keys, self._levels):
            await bucket.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None
