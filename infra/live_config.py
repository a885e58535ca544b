"""The live gateway config of one process: hot reload without a restart.

``LiveConfig.start`` loads the active config from the JetStream KV bucket ``GW_CONFIG`` (falling back
to the config file when nothing was published yet), then watches the key: a new valid version becomes
``current`` at once, the callbacks registered with ``on_change`` run (sync or async, one after the
other; one that raises is logged and the others still run), and a ``ControlEvent`` (``kind="config"``,
``reason="activated"``, ``source="<name>-<pid>"``) records that this process took it, once the
callbacks are done (and once at start, ``attrs={"initial": true}``).

- In-flight requests are never failed by a reload: a handler reads ``current`` once and keeps that
  object; ``get(version)`` still finds the last ``HISTORY`` versions, so a stage can serve a request
  with the config it was planned with (``Envelope.config_version``) even after a newer one arrived.
- An invalid value in the KV (someone bypassed ``gateway config apply``'s validation) is logged with
  the error naming the bad path and ignored: the old config stays.
- Updates that arrive while callbacks are still running are coalesced: only the newest is activated
  next, though every valid version seen is kept for ``get``.
- After a reconnect (the broker may have restarted) the watcher is opened anew; a resync every
  ``resync_s`` (a KV get) catches anything it still missed, and a watcher that fails is re-created.

The control plane has its own nats-py connection: it never competes with the stage's hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from infra import nats_connect
from infra.config import ConfigCheck, ConfigError, parse_config_text, version_of
from infra.config_store import ActiveConfig, config_bucket, fetch_active
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.events import ControlAttrs, ControlEvent
from schemas.ids import uuid7
from schemas.wire import encode

log = logging.getLogger("gateway.config")

ChangeCallback = Callable[[GatewayConfig, str], Awaitable[None] | None]
"""Called with the new config and its version, after ``current`` was swapped."""

class LiveConfig:
    HISTORY = 8

    def __init__(self, config_file: Path, name: str, *, check: ConfigCheck, resync_s: float = 10.0) -> None:
        self.config_file = config_file
        self.check = check  # what a config must also pass (the composition root's guardrail check)
        self.name = name
        self.source = f"{name}-{os.getpid()}"
        self.resync_s = resync_s
        self._current: GatewayConfig | None = None
        self._version = ""
        self._history: OrderedDict[str, GatewayConfig] = OrderedDict()
        self._callbacks: list[ChangeCallback] = []
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._watcher: Any = None  # nats-py's KeyWatcher (untyped methods)
        self._pending: ActiveConfig | None = None
        self._wake = asyncio.Event()
        self._seen = asyncio.Event()  # set (and replaced) whenever a version is added to the history
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._refused = ""  # the last value refused, so the periodic resync does not log it again

    @classmethod
    def static(cls, config: GatewayConfig, version: str = "static", name: str = "static") -> LiveConfig:
        """A config that never changes (tests, tools): ``current``/``version``/``get`` without NATS."""
        live = cls(Path("/dev/null"), name, check=lambda _config: [])  # it never loads a config to check
        live._activate_now(config, version)
        return live

    # -- reading ----------------------------------------------------------------------------------

    @property
    def current(self) -> GatewayConfig:
        if self._current is None:
            raise RuntimeError("LiveConfig not started")
        return self._current

    @property
    def version(self) -> str:
        return self._version

    def get(self, version: str) -> GatewayConfig | None:
        """The config of ``version`` if this process has seen it (the last ``HISTORY`` versions)."""
        return self._history.get(version)

    async def wait_for(self, version: str, timeout_s: float = 1.0) -> GatewayConfig | None:
        """``get(version)``, waiting up to ``timeout_s`` for a version this process has not seen yet
        (another stage may have taken a new version a few milliseconds before this one)."""
        deadline = time.monotonic() + timeout_s
        while (config := self._history.get(version)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not version:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen.wait(), timeout=remaining)
        return config

    def on_change(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, nats_url: str) -> None:
        """Load the active config (the KV's, else the file's) and start watching for new ones."""
        self._nc = await nats_connect.connect(nats_url, f"{self.source}-config", reconnected=self._reconnected)
        self._js = self._nc.jetstream()
        active = await self._fetch()
        config: GatewayConfig | None = None
        if active is not None:
            try:
                config = active.parse(self.check)
            except ConfigError as exc:
                log.error("ignoring the invalid active config %s; using the config file: %s", active.version, exc)
        if active is not None and config is not None:
            version = active.version
        else:
            text = self.config_file.read_text()
            config, version = parse_config_text(text, str(self.config_file), check=self.check), version_of(text)
            log.info("no config published in %s yet: using %s (%s)", subjects.BUCKET_CONFIG, self.config_file,
                     version)
        await self._preload_history()
        self._activate_now(config, version)
        await self._announce("", version, ControlAttrs(initial=True))
        with contextlib.suppress(Exception):  # no bucket yet: the watch loop keeps trying
            await self._open_watcher()
        self._tasks = [asyncio.create_task(self._watch_loop(), name=f"{self.name}-config-watch"),
                       asyncio.create_task(self._resync_loop(), name=f"{self.name}-config-resync"),
                       asyncio.create_task(self._apply_loop(), name=f"{self.name}-config-apply")]

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        pending = set(self._tasks)
        while pending:
            # Cancel until done: on Python 3.11 a cancellation that lands while a nats-py request
            # (asyncio.wait_for inside) completes is swallowed, and the loop would carry on.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                log.warning("config task %s ended with %r", task.get_name(), task.exception())
        self._tasks = []
        await self._close_watcher()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    async def _reconnected(self) -> None:
        """The broker may have restarted: its watch consumer is gone. Watch anew (the watch loop reopens
        it and offers the current value), so a change made meanwhile lands now, not at the next resync."""
        await self._close_watcher()

    # -- internals --------------------------------------------------------------------------------

    def _remember(self, config: GatewayConfig, version: str) -> None:
        self._history[version] = config
        self._history.move_to_end(version)
        while len(self._history) > self.HISTORY:  # forget the oldest, never the current one
            del self._history[next(v for v in self._history if v != self._version)]
        seen, self._seen = self._seen, asyncio.Event()
        seen.set()

    def _activate_now(self, config: GatewayConfig, version: str) -> None:
        self._remember(config, version)
        self._current, self._version = config, version

    async def _fetch(self) -> ActiveConfig | None:
        assert self._js is not None
        try:
            return await fetch_active(self._js)
        except ConfigError as exc:
            self._refuse(str(exc), f"ignoring the active config value; keeping version {self._version}: %s")
            return None

    def _refuse(self, error: str, message: str) -> None:
        if error != self._refused:
            self._refused = error
            log.error(message, error)

    async def _preload_history(self) -> None:
        """Recent valid versions from the bucket's history, so ``get`` knows them after a restart."""
        assert self._js is not None
        try:
            kv = await config_bucket(self._js)
            entries = await kv.history(subjects.CONFIG_KEY)
        except Exception:  # noqa: BLE001 - no bucket or no history: nothing to preload
            return
        for entry in entries[-self.HISTORY:]:
            if entry.value and entry.operation is None:
                with contextlib.suppress(ConfigError):
                    active = ActiveConfig.from_json(entry.value, entry.revision or 0)
                    self._remember(active.parse(self.check), active.version)

    async def _open_watcher(self) -> None:
        assert self._js is not None
        kv = await config_bucket(self._js)
        self._watcher = await kv.watch(subjects.CONFIG_KEY)

    async def _close_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def _watch_loop(self) -> None:
        while not self._stopping:
            try:
                if self._watcher is None:
                    await self._open_watcher()
                    await self._offer(await self._fetch())
                try:
                    # a plain queue get: asyncio.wait_for around it (KeyWatcher.updates) can swallow a
                    # cancellation on Python 3.11 and hang the worker's shutdown
                    entry = await self._watcher.__anext__()
                except StopAsyncIteration:  # the watcher was stopped: open a new one
                    await self._close_watcher()
                    continue
                if entry is None:  # "caught up" marker
                    continue
                if entry.operation is not None:
                    log.warning("the active config was %s in %s; keeping version %s", entry.operation.lower(),
                                subjects.BUCKET_CONFIG, self._version)
                    continue
                try:
                    active = ActiveConfig.from_json(entry.value or b"", entry.revision or 0)
                except ConfigError as exc:
                    self._refuse(str(exc), f"ignoring an invalid config value; keeping version {self._version}: %s")
                    continue
                await self._offer(active)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup must not end hot reload for good
                log.warning("config watch failed (%r); retrying", exc)
                await self._close_watcher()
                await asyncio.sleep(1.0)

    async def _resync_loop(self) -> None:
        """Every ``resync_s``, compare with the KV: catches anything the watcher missed."""
        while not self._stopping:
            await asyncio.sleep(self.resync_s)
            try:
                await self._offer(await self._fetch())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker may be reconnecting: next period
                log.warning("config resync failed (%r)", exc)

    async def _offer(self, active: ActiveConfig | None) -> None:
        """Validate a value and queue it for activation (the newest wins)."""
        if active is None or active.version == self._version:
            return
        if active.version not in self._history:
            try:
                config = active.parse(self.check)
            except ConfigError as exc:
                self._refuse(str(exc), f"ignoring invalid config {active.version}; keeping version {self._version}: %s")
                return
            self._remember(config, active.version)
        self._pending = active
        self._wake.set()

    async def _apply_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            active, self._pending = self._pending, None
            if active is None or active.version == self._version:
                continue
            config = self._history.get(active.version)
            if config is None:  # pushed out of the history by newer ones meanwhile
                continue
            await self._activate(config, active.version)

    async def _activate(self, config: GatewayConfig, version: str) -> None:
        previous = self._version
        self._activate_now(config, version)
        log.info("config %s active (was %s)", version, previous)
        errors: list[str] = []
        for callback in list(self._callbacks):
            try:
                result = callback(config, version)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing consumer must not stop the others
                log.exception("config %s: a change callback failed", version)
                errors.append(f"{getattr(callback, '__qualname__', repr(callback))}: {exc!r}")
        await self._announce(previous, version, ControlAttrs(callback_errors=errors) if errors else ControlAttrs())

    async def _announce(self, previous: str, version: str, attrs: ControlAttrs) -> None:
        """Record that this process now serves ``version`` (one ``gateway_events`` row)."""
        if self._js is None:
            return
        event = ControlEvent(event_id=uuid7(), ts=time.time(), kind="config", subject=version,
                             from_state=previous, to_state=version, reason="activated", source=self.source,
                             config_version=version, attrs=attrs)
        try:
            await self._js.publish(subjects.EVT_CONTROL, encode(event), timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - the config is active either way
            log.warning("could not record the activation of config %s: %r", version, exc)
