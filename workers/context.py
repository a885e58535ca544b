"""What every stage worker of one process shares: the broker connection, the leases, the confirmations,
the load report, the live config, the settings.

A process hosts one stage worker or several (``gateway up``'s layouts): each is still its own subscriber
on its own subject, but they share one NATS connection, one lease keeper (one timer signals every
request the process holds), one confirmation inbox and one live config (one watcher, one reload).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from infra.confirm import Confirmer
from infra.key_directory import StaticKeys
from infra.settings import Settings
from schemas import subjects
from workers.leases import Leases
from workers.load import LoadReporter

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

    from infra.key_directory import LiveKeyDirectory
    from infra.live_config import LiveConfig

Handler = Callable[[Msg], Awaitable[None]]


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
    # what a process holds, by name (held requests, tasks, open streams...), for its stats log line
    gauges: dict[str, Callable[[], int]] = field(default_factory=dict)
    reconnected_at: float = 0.0  # wall clock of the last reconnect to the broker (it may have restarted)
    # the live key directory (config keys + GW_KEYS/GW_LIMITS, watched); None: the config's keys only
    key_directory: LiveKeyDirectory | StaticKeys | None = None
    _subscriptions: list[tuple[str, str, Handler]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.leases = Leases(lambda: self.nc, self.settings.ack_wait_s)
        self.confirmer = Confirmer(lambda: self.nc)
        self.load = LoadReporter(lambda: self.nc, self.name, self.stages, active=lambda: len(self.leases) > 0)
        self.gauges["held"] = lambda: len(self.leases)
        self.gauges["awaiting_confirmation"] = lambda: len(self.confirmer)

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
