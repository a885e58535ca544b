"""What every stage worker of one process shares: the broker connection, the leases, the confirmations,
the load report, the live config, the settings.

A process hosts one stage worker or several (``gateway up``'s layouts): each is still its own subscriber
on its own subject, but they share one NATS connection, one lease keeper (one timer signals every
request the process holds), one confirmation inbox, one live config (one watcher, one reload) and one
handle on the shared ledger: a governed request is settled by the process where it ends (``settle``),
on the same cached ledger states its policy stage reserves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client.registry import CollectorRegistry

from infra.confirm import Confirmer
from infra.key_directory import StaticKeys
from infra.ledger import Ledger
from infra.metrics_exposition import process_registry
from infra.settings import Settings
from schemas import subjects
from stages.governance.draft import Draft
from workers.leases import Leases
from workers.load import LoadReporter
from workers.process_metrics import WorkerStateCollector
from workers.settlement import SettlementFacts, Settler

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

    from infra.key_directory import LiveKeyDirectory
    from infra.live_config import LiveConfig

Handler = Callable[[Msg], Awaitable[None]]

log = logging.getLogger("gateway")

SETTLE_TIMEOUT_S = 2.0
"""How long a request's end waits for its settlement before leaving it to the ledger consumer (a
settlement that went through after all is not repeated: it acts only while the hold is there)."""


@dataclass
class WorkerContext:
    broker: NatsBroker
    settings: Settings
    live_config: LiveConfig | None
    name: str = "worker"
    stages: list[str] = field(default_factory=list)
    leases: Leases = field(init=False)
    confirmer: Confirmer = field(init=False)
    load: LoadReporter = field(init=False)
    # the process's Prometheus metrics (workers/process_metrics.py), answered to every scrape
    metrics: CollectorRegistry = field(init=False)
    # what a process holds, by name (held requests, tasks, open streams...), for its stats log line
    gauges: dict[str, Callable[[], int]] = field(default_factory=dict)
    reconnected_at: float = 0.0  # wall clock of the last reconnect to the broker (it may have restarted)
    # the live key directory (config keys + GW_KEYS/GW_LIMITS, watched); None: the config's keys only
    key_directory: LiveKeyDirectory | StaticKeys | None = None
    _subscriptions: list[tuple[str, str, Handler]] = field(default_factory=list, init=False)
    _ledger: Ledger[Draft] | None = field(default=None, init=False)
    settler: Settler = field(init=False)
    """Settles the requests that end in this process on the shared ledger (``settle``); a policy worker
    also runs its durable consumer, the fallback for the records whose settlement failed here."""

    def __post_init__(self) -> None:
        self.leases = Leases(lambda: self.nc, self.settings.ack_wait_s)
        self.confirmer = Confirmer(lambda: self.nc)
        self.load = LoadReporter(lambda: self.nc, self.name, self.stages, active=lambda: len(self.leases) > 0,
                                 subject=self.hop(subjects.LOAD_REPORT))
        self.metrics = process_registry()
        self.metrics.register(WorkerStateCollector(self.gauges, lambda: self.load.lag_ms, lambda: {
            "lane": self.settings.lane, "stages": ",".join(self.stages)}))
        self.gauges["held"] = lambda: len(self.leases)
        self.gauges["awaiting_confirmation"] = lambda: len(self.confirmer)
        self.settler = Settler(lambda: self.nc, self.ledger, lambda: self.keys.get(), self.name)

    @property
    def lane(self) -> str:
        """The lane this process serves (``interactive`` or ``batch``, ``GATEWAY_LANE``)."""
        return self.settings.lane

    def hop(self, subject: str) -> str:
        """``subject`` in this process's lane: where its stages take and pass requests."""
        return subjects.in_lane(subject, self.settings.lane)

    @property
    def live(self) -> LiveConfig:
        """The process's live config (hot reload); every stage worker has one, the sink does not."""
        assert self.live_config is not None, "this process was started without the live config"
        return self.live_config

    @property
    def keys(self) -> LiveKeyDirectory | StaticKeys:
        """The process's key directory (``get()``: the ``KeyDirectory`` of now)."""
        if self.key_directory is None:
            self.key_directory = StaticKeys(self.live)
        return self.key_directory

    @property
    def nc(self) -> NatsClient:
        connection = self.broker.connection
        assert connection is not None, "broker not started"
        return connection

    def ledger(self) -> Ledger[Draft]:
        """The process's one handle on the shared ledger (``open_ledger`` first): the policy stage's
        reservations and every stage's settlements coalesce on it and share its cached states."""
        assert self._ledger is not None, "the ledger opens once the broker is connected (open_ledger)"
        return self._ledger

    async def open_ledger(self) -> Ledger[Draft]:
        if self._ledger is None:
            ledger = await Ledger.open(self.nc.jetstream(), Draft)
            if self._ledger is None:  # another task may have opened it meanwhile
                self.use_ledger(ledger)
        return self.ledger()

    def use_ledger(self, ledger: Ledger[Draft]) -> None:
        self._ledger = ledger
        self.gauges["ledger.writes"] = lambda: ledger.writes
        self.gauges["ledger.conflicts"] = lambda: ledger.conflicts
        self.gauges["ledger.reads"] = lambda: ledger.reads
        self.gauges["settled"] = lambda: self.settler.settled

    async def settle(self, record: SettlementFacts) -> bool:
        """Settle a request that ends here on every scope that holds its reservation; False when that
        failed (its record then goes where the durable ``ledger`` consumer settles it)."""
        try:
            await self.open_ledger()
            await asyncio.wait_for(self.settler.settle(record), SETTLE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the consumer settles it instead: nothing is lost
            log.warning("settlement of %s left to the ledger consumer: %s", record.request_id,
                        str(exc) or type(exc).__name__)
            return False
        return True

    def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> None:
        """Declare a stage's subscriber (made once the broker is connected, before the stage says it is
        ready). A plain nats-py subscription: FastStream's per-message machinery (decoding, context,
        middlewares) cost ≈ 7 % of a stage process's CPU under load, for nothing the chain uses."""
        self._subscriptions.append((subject, queue, handler))

    async def start(self) -> None:
        """Once the broker is connected: the stages' subscribers, the confirmation inbox, and answering
        whether this process holds another run of a request handed out again (``workers/leases.py``)."""
        await self.confirmer.start()
        await self.nc.subscribe(f"{subjects.HELD_PREFIX}.*", cb=self._on_held)
        for subject, queue, handler in self._subscriptions:
            await self.nc.subscribe(subject, queue=queue, cb=handler)

    async def _on_held(self, msg: Msg) -> None:
        request_id = msg.subject.rsplit(".", 1)[-1]
        if msg.reply and self.leases.holds_other(request_id, msg.data.decode()):
            await self.nc.publish(msg.reply, b"held")

    async def stop(self) -> None:
        await self.leases.stop()
        await self.confirmer.stop()

    def stats(self) -> str:
        return " ".join(f"{name}={gauge()}" for name, gauge in self.gauges.items())
