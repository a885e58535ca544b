"""The routing side of live per-target health: ``HealthMonitor`` decides, ``Admission`` is its answer.

``HealthMonitor`` (routing stage, every replica, no queue group): per target a failure window, a
latency EWMA and the in-flight count, from the provider replicas' reports (``workers/health_wire.py``
has their format, ``workers/health_reporter.py`` sends them); the circuit breaker's state lives in
the GW_BREAKERS key-value bucket (key: ``breaker_key(target_id)``), watched into a local dict so the
hot path reads it without I/O. Transitions are compare-and-set writes: when several replicas reach
the same decision, one write wins and only its writer publishes the ``ControlEvent`` on
``gw.evt.control`` (JetStream, de-duplicated by event id), which the sink lands in ClickHouse. The
transitions themselves are pure (``stages/breaker.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from schemas import subjects
from schemas.config import CircuitBreaker
from schemas.events import ControlEvent
from schemas.ids import uuid7
from schemas.wire import encode, replace
from stages import breaker
from stages.breaker import CLOSED, BreakerState, Transition
from stages.health import LatencyEwma, SlidingWindow
from workers.health_wire import REPORT_INTERVAL_S, NatsSource, breaker_key, connection, target_of_key

log = logging.getLogger("gateway.health")

REPORTER_TTL_S = 5.0
"""A reporter silent this long is gone (crashed): its in-flight calls no longer count."""
NOTE_GRACE_S = REPORT_INTERVAL_S + 0.05
"""A call routed here counts as in flight until a report received this long after it (by then the
provider replica that took it has reported it) or ``NOTE_TTL_S``, whichever comes first."""
NOTE_TTL_S = 1.0
CAS_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Admission:
    decision: Literal["allow", "probe", "skip"]
    retry_after_s: float | None = None


ALLOW = Admission("allow")
PROBE = Admission("probe")


class _TargetHealth:
    __slots__ = ("window", "ewma", "inflight", "notes")

    def __init__(self, window_s: float) -> None:
        self.window = SlidingWindow(window_s)
        self.ewma = LatencyEwma()
        self.inflight = 0  # the sum over live reporters
        self.notes: deque[float] = deque()  # calls routed by this replica, not yet in a report


class _Reporter:
    __slots__ = ("last_seen", "inflight")

    def __init__(self) -> None:
        self.last_seen = 0.0
        self.inflight: dict[str, int] = {}


def _trip(health: _TargetHealth, state: BreakerState, *, now: float, cfg: CircuitBreaker) -> Transition | None:
    """The trip decision on the window as it is at this attempt: a re-read after a lost race may have
    restarted the window (the breaker was closed meanwhile)."""
    ok, fail = health.window.totals(now)
    return breaker.trip(state, ok, fail, now, cfg)


class HealthMonitor:
    """One per routing replica: live health of every target and the shared breaker states.

    Hot path: ``admit`` (no await unless the breaker is not closed), ``latency_ms``, ``inflight``,
    ``note_routed``, ``state``. ``clock`` is wall-clock seconds (the breaker state is shared across
    hosts); tests inject one to pass cooldowns without sleeping."""

    def __init__(self, nc: NatsSource, breaker_config: Callable[[], CircuitBreaker], source: str, *,
                 clock: Callable[[], float] = time.time,
                 config_version: Callable[[], str] = lambda: "") -> None:
        self._nc = nc
        self._config = breaker_config
        self._source = source
        self._clock = clock
        self._config_version = config_version
        self._targets: dict[str, _TargetHealth] = {}
        self._reporters: dict[str, _Reporter] = {}
        self._breakers: dict[str, tuple[BreakerState, int]] = {}  # target → (state, KV revision)
        self._last_report_at = 0.0
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._sub: Subscription | None = None
        self._loaded = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._events: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the breaker states (returns once the bucket's current values are in), then listen."""
        nc = connection(self._nc)
        self._js = nc.jetstream()
        self._kv = await self._js.key_value(subjects.BUCKET_BREAKERS)
        self._watcher = await self._kv.watchall()
        self._tasks.append(asyncio.create_task(self._watch(self._watcher), name="health-breaker-watch"))
        await asyncio.wait_for(self._loaded.wait(), timeout=10)
        self._sub = await nc.subscribe(subjects.HEALTH_REPORT, cb=self._on_report)
        await nc.flush()
        self._tasks.append(asyncio.create_task(self._expire_reporters(), name="health-reporter-expiry"))

    async def reconnected(self) -> None:
        """The broker may have restarted and taken the watch consumer with it: watch the bucket anew."""
        if self._kv is None:
            return
        old, self._watcher = self._watcher, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.stop()  # type: ignore[no-untyped-call]
        try:
            self._watcher = await self._kv.watchall()
        except Exception as exc:  # noqa: BLE001 - the next reconnect tries again; the states stay as they were
            log.warning("could not watch the breaker states again: %r", exc)
            return
        self._tasks.append(asyncio.create_task(self._watch(self._watcher), name="health-breaker-watch"))

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._events:  # transition events already decided: let them land
            await asyncio.wait(list(self._events), timeout=5)

    # -- hot path ----------------------------------------------------------------------------------

    async def admit(self, target_id: str) -> Admission:
        """May a request use this target? ``probe``: it took a half-open probe slot (mark the planned
        target ``probe=True``); ``skip``: the breaker is open (``retry_after_s``: until the cooldown
        ends; ``None`` while probes are under way)."""
        cfg = self._config()
        if not cfg.enabled:
            return ALLOW
        cached = self._breakers.get(target_id)
        if cached is None or cached[0].state == "closed":
            return ALLOW
        now = self._clock()
        decision, retry_after = breaker.admission(cached[0], now, cfg)
        if decision == "skip":
            return Admission("skip", retry_after)
        if await self._transact(target_id, partial(breaker.claim, now=now, cfg=cfg)) is not None:
            return PROBE
        decision, retry_after = breaker.admission(self._state_of(target_id), now, cfg)
        if decision == "allow":  # closed meanwhile
            return ALLOW
        return Admission("skip", retry_after)

    def latency_ms(self, target_id: str) -> float | None:
        """The EWMA latency of its ok calls, ``None`` when unknown (or not seen for 5 minutes)."""
        health = self._targets.get(target_id)
        return None if health is None else health.ewma.get(self._clock())

    def inflight(self, target_id: str) -> int:
        """Calls in flight at every provider replica, plus the ones routed here not reported yet."""
        health = self._targets.get(target_id)
        if health is None:
            return 0
        notes = health.notes
        if notes:
            cutoff = max(self._clock() - NOTE_TTL_S, self._last_report_at - NOTE_GRACE_S)
            while notes and notes[0] <= cutoff:
                notes.popleft()
        return health.inflight + len(notes)

    def note_routed(self, target_id: str) -> None:
        self._health(target_id).notes.append(self._clock())

    def state(self, target_id: str) -> str:
        return self._state_of(target_id).state

    # -- introspection (ops, tests) ------------------------------------------------------------------

    def known_targets(self) -> list[str]:
        """Every target this replica has health or a breaker state for."""
        return sorted(set(self._targets) | set(self._breakers))

    def window(self, target_id: str) -> tuple[int, int]:
        """(ok, fail) calls in the failure window, as this replica counts them."""
        health = self._targets.get(target_id)
        return (0, 0) if health is None else health.window.totals(self._clock())

    def breaker(self, target_id: str) -> BreakerState:
        """The whole shared breaker state, as this replica last saw it."""
        return self._state_of(target_id)

    # -- reports -----------------------------------------------------------------------------------

    def _health(self, target_id: str) -> _TargetHealth:
        health = self._targets.get(target_id)
        window_s = self._config().window_s
        if health is None:
            health = self._targets[target_id] = _TargetHealth(window_s)
        elif health.window.window_s != window_s:  # the config changed: start a window of the new size
            health.window = SlidingWindow(window_s)
        return health

    async def _on_report(self, msg: Msg) -> None:
        try:
            await self._apply_report(orjson.loads(msg.data))
        except Exception:
            log.warning("bad health report or breaker update failed", exc_info=True)

    async def _apply_report(self, report: dict[str, Any]) -> None:
        now = self._clock()
        cfg = self._config()
        reporter_id = str(report["reporter"])
        reporter = self._reporters.get(reporter_id)
        if reporter is None:
            reporter = self._reporters[reporter_id] = _Reporter()
        inflight: dict[str, int] = {}
        failing: list[str] = []
        for target_id, (ok, fail, ms_sum, ms_n, in_flight) in report["targets"].items():
            health = self._health(target_id)
            if ok or fail:
                health.window.add(now, int(ok), int(fail))
            if ms_n:
                health.ewma.add(now, float(ms_sum), int(ms_n))
            if in_flight:
                inflight[target_id] = int(in_flight)
            if fail:
                failing.append(target_id)
        self._replace_inflight(reporter, inflight)
        reporter.last_seen = now
        self._last_report_at = now

        prefix = f"{reporter_id}:{report.get('boot', '')}:{report.get('seq', 0)}"
        for i, (target_id, outcome, ms) in enumerate(report.get("probes", ())):
            if outcome == "ok":
                self._health(target_id).ewma.add(now, float(ms), 1)
            if cfg.enabled and outcome in ("ok", "fail", "neutral") and self.state(target_id) == "half_open":
                await self._transact(target_id, partial(breaker.settle, outcome=outcome, probe_id=f"{prefix}:{i}",
                                                        now=now, cfg=cfg))
        if not cfg.enabled:
            return
        for target_id in failing:
            if self.state(target_id) != "closed":
                continue
            health = self._targets[target_id]
            if breaker.failure_reason(*health.window.totals(now), cfg) is not None:
                await self._transact(target_id, partial(_trip, health, now=now, cfg=cfg))

    def _replace_inflight(self, reporter: _Reporter, inflight: dict[str, int]) -> None:
        for target_id, n in reporter.inflight.items():
            self._targets[target_id].inflight -= n
        for target_id, n in inflight.items():
            self._targets[target_id].inflight += n
        reporter.inflight = inflight

    async def _expire_reporters(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            cutoff = self._clock() - REPORTER_TTL_S
            for reporter_id, reporter in list(self._reporters.items()):
                if reporter.last_seen < cutoff:
                    self._replace_inflight(reporter, {})
                    del self._reporters[reporter_id]

    # -- breaker state -----------------------------------------------------------------------------

    def _state_of(self, target_id: str) -> BreakerState:
        cached = self._breakers.get(target_id)
        return CLOSED if cached is None else cached[0]

    def _apply(self, target_id: str, state: BreakerState, revision: int) -> None:
        """Take a state into the local view unless we already hold a newer one. On a change to closed
        the failure window restarts, so the failures that opened the breaker do not reopen it."""
        cached = self._breakers.get(target_id)
        if cached is not None and revision <= cached[1]:
            return
        self._breakers[target_id] = (state, revision)
        # a key with history that is closed now was open before, whether or not we saw that (a view
        # that lagged, then caught up by a re-read): its failures are the ones that opened it
        if state.state == "closed" and revision > 0 and (cached is None or cached[0].state != "closed"):
            health = self._targets.get(target_id)
            if health is not None:
                health.window.reset()

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the bucket's current values are all in
                self._loaded.set()
                continue
            try:
                target_id = target_of_key(entry.key)
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    state = CLOSED
                else:
                    state = BreakerState.from_dict(orjson.loads(entry.value))
                self._apply(target_id, state, entry.revision or 0)
            except Exception:
                log.warning("bad breaker entry %r", entry.key, exc_info=True)

    async def _refresh(self, target_id: str) -> None:
        assert self._kv is not None
        try:
            entry = await self._kv.get(breaker_key(target_id))
        except KeyNotFoundError as err:
            # nats-py's get() reports a delete marker as KeyNotFoundError too, with the marker as its entry
            if err.entry is not None and err.entry.revision:
                self._apply(target_id, CLOSED, int(err.entry.revision))
            return
        value = orjson.loads(entry.value) if entry.value else None
        self._apply(target_id, BreakerState.from_dict(value), entry.revision or 0)

    async def _transact(self, target_id: str,
                        step: Callable[[BreakerState], Transition | None]) -> Transition | None:
        """Compute the next state from the current one and write it with compare-and-set; on a lost
        race, re-read and decide again. Returns the transition this replica wrote, if any.

        Strict: the write expects exactly the revision the decision was made on, 0 for a key never seen.
        (nats-py's ``create`` is not: over a delete marker it re-reads and writes on top of whatever it
        finds, so a trip decided on a stale view could undo an operator's ``kv del`` that landed
        meanwhile and reopen the breaker with the failures that had opened it.)"""
        if self._kv is None:
            return None
        key = breaker_key(target_id)
        for _ in range(CAS_ATTEMPTS):
            cached = self._breakers.get(target_id)
            state, revision = (CLOSED, 0) if cached is None else cached
            transition = step(state)
            if transition is None:
                return None
            value = orjson.dumps({**transition.after.as_dict(), "target": target_id})
            try:
                new_revision = await self._kv.update(key, value, last=revision)
            except KeyWrongLastSequenceError:
                await self._refresh(target_id)
                continue
            except Exception:
                log.warning("breaker update of %s failed", target_id, exc_info=True)
                return None
            self._apply(target_id, transition.after, new_revision)
            if transition.changes_state:
                self._publish_event(target_id, transition, new_revision)
            return transition
        return None

    def _publish_event(self, target_id: str, transition: Transition, revision: int) -> None:
        event = ControlEvent(
            event_id=uuid7(), ts=transition.after.since, kind="breaker", subject=target_id,
            from_state=transition.before.state, to_state=transition.after.state, reason=transition.reason,
            source=self._source, config_version=self._config_version(),
            attrs=replace(transition.attrs, revision=revision),
        )
        task = asyncio.create_task(self._send_event(event))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _send_event(self, event: ControlEvent) -> None:
        assert self._js is not None
        payload = encode(event)
        for attempt in range(3):
            try:
                await self._js.publish(subjects.EVT_CONTROL, payload, headers={"Nats-Msg-Id": event.event_id})
                return
            except Exception:
                if attempt == 2:
                    log.error("breaker event %s → %s of %s lost", event.from_state, event.to_state, event.subject,
                              exc_info=True)
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
