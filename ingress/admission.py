"""Whether ingress takes a request now: the broker is reachable, every stage has a live replica, and the
chain is not overloaded. A refusal is immediate, a 503 with ``Retry-After``, which the official SDKs
retry on their own; accepting a request the chain cannot serve in time would only make it wait.

- ``ChainProbe``: every ``every_s`` (and on demand for ``/readyz``) one request per stage to
  ``gw.ping.<stage>``, answered by any replica that has its subscriptions live and its models loaded.
  No responders for a stage = no replica can take requests there now.
- ``Overload``: two signals. Leading: a busy worker process reports how late its event loop runs
  (``workers/load.py``), i.e. how long a request arriving now waits there before each stage; past
  ``target_ms / 4`` in three reports in a row of any process (a request crosses about four such queues;
  one late wake-up is not a standing queue), new requests are refused. Lagging, as a backstop: CoDel's
  rule on the gateway's own time (total minus provider time) of the requests that completed in the last
  interval: when even the fastest of them spent more than ``target_ms`` in the gateway, a queue is
  standing, not passing. While refusing on that rule, one request per interval still goes in, to
  measure whether the queue has drained. Plus a bound on the requests one ingress waits for
  (``max_pending``), so memory stays bounded whatever the load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from infra.tasks import cancel
from schemas import subjects
from schemas.errors import Overloaded, ServiceUnavailable

log = logging.getLogger("gateway.ingress")


RECHECK_S = 0.1


class ChainProbe:
    def __init__(self, nc: Callable[[], NatsClient | None], stages: Sequence[str], *, every_s: float = 2.0,
                 timeout_s: float = 1.0) -> None:
        self._nc = nc
        self.stages = list(stages)
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.missing: list[str] = list(stages)  # stages without a live replica at the last probe
        self.checked_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return not self.missing

    async def probe(self) -> list[str]:
        """Ask every stage now; returns (and remembers) the stages with no live replica."""
        async with self._lock:
            nc = self._nc()
            if nc is None or not nc.is_connected:
                self.missing = list(self.stages)
            else:
                results = await asyncio.gather(*(self._ping(nc, stage) for stage in self.stages))
                self.missing = [stage for stage, ok in zip(self.stages, results, strict=True) if not ok]
            self.checked_at = time.monotonic()
            return self.missing

    async def fresh(self, max_age_s: float = 0.5) -> list[str]:
        if time.monotonic() - self.checked_at > max_age_s:
            return await self.probe()
        return self.missing

    async def _ping(self, nc: NatsClient, stage: str) -> bool:
        """False only when nobody subscribes: a slow answer is a busy replica, not a missing one."""
        try:
            await nc.request(subjects.ping_subject(stage), b"", timeout=self.timeout_s)
            return True
        except NoRespondersError:
            return False
        except (NatsTimeoutError, TimeoutError):
            return True
        except Exception as exc:  # noqa: BLE001 - reconnecting
            log.debug("ping %s failed: %r", stage, exc)
            return False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)

    async def _loop(self) -> None:
        while True:
            # every_s while all is well; often while a stage is missing (back within a second or so)
            await asyncio.sleep(self.every_s if not self.missing else RECHECK_S)
            before = list(self.missing)
            missing = await self.probe()
            if missing != before:
                if missing:
                    log.warning("no live replica of %s: refusing requests until one is back", ", ".join(missing))
                else:
                    log.info("every stage has a live replica again")

    async def refusal(self) -> ServiceUnavailable | None:
        """None when every stage has a live replica; a stage seen missing is asked again first (after a
        broker restart the workers re-subscribe within milliseconds of reconnecting)."""
        if self.missing:
            await self.fresh(RECHECK_S)
        if not self.missing:
            return None
        return ServiceUnavailable(
            f"The gateway cannot take requests right now: no {', '.join(self.missing)} worker is running. "
            "It restarts on its own; retry shortly.", code="chain_unavailable", retry_after_s=1.0)


class Overload:
    REPORT_FRESH_S = 0.5
    SUSTAINED = 3
    """Reports in a row over the mark before a process counts as overloaded: a single late wake-up (a
    garbage collection, a burst) is not a standing queue."""
    MIN_COMPLETIONS = 2
    """Completions an interval needs to start shedding: one slow request alone is its own work (10,000
    messages through redaction took over a second), not a queue, and made the next requests 503s."""

    def __init__(self, *, target_ms: float = 1000.0, interval_s: float = 0.5, max_pending: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target_ms = target_ms
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._clock = clock
        self._lags: dict[int, tuple[deque[float], float]] = {}  # pid -> (last lags ms, when last reported)
        self._interval_ends = clock() + interval_s
        self._minimum: float | None = None  # the smallest gateway time seen in this interval
        self._completions = 0  # requests completed in this interval
        self.shedding = False
        self._probe_sent = False  # while shedding: this interval's one request let through
        self.refused = 0

    def report(self, pid: int, lag_ms: float) -> None:
        """A worker process's event-loop lag (``workers/load.py``)."""
        entry = self._lags.get(pid)
        lags = entry[0] if entry is not None else deque(maxlen=self.SUSTAINED)
        lags.append(lag_ms)
        self._lags[pid] = (lags, self._clock())

    def queue_ms(self) -> float:
        """How long a request arriving now waits in the most loaded process: the least of its last
        ``SUSTAINED`` reports (fresh reports only; a process that went quiet is no longer busy)."""
        now = self._clock()
        for pid in [p for p, (_, at) in self._lags.items() if now - at > self.REPORT_FRESH_S]:
            del self._lags[pid]
        return max((min(lags) for lags, _ in self._lags.values() if len(lags) == self.SUSTAINED), default=0.0)

    def observe(self, gateway_ms: float) -> None:
        """A request completed after ``gateway_ms`` in the gateway (queues included, provider excluded)."""
        self._roll()
        self._completions += 1
        if self._minimum is None or gateway_ms < self._minimum:
            self._minimum = gateway_ms

    def _roll(self) -> None:
        now = self._clock()
        if now < self._interval_ends:
            return
        # an interval with no completion keeps the verdict: nothing says the queue drained
        if self._minimum is not None:
            over = self._minimum > self.target_ms
            if not over or self._completions >= self.MIN_COMPLETIONS:  # one fast completion clears it
                self.shedding = over
        self._minimum = None
        self._completions = 0
        self._probe_sent = False
        self._interval_ends = now + self.interval_s

    def refusal(self, pending: int) -> Overloaded | None:
        self._roll()
        if pending >= self.max_pending:
            reason = f"{pending} requests are already waiting at this ingress"
        elif (queued := self.queue_ms()) > self.target_ms / 4:
            reason = f"a stage worker has {queued:.0f} ms of work queued"
        elif self.shedding and self._probe_sent:
            reason = f"requests spend over {self.target_ms:.0f} ms queued in the gateway"
        else:
            if self.shedding:
                self._probe_sent = True
            return None
        self.refused += 1
        return Overloaded(f"The gateway is overloaded ({reason}); retry shortly.", retry_after_s=1.0)
