"""Routing worker: plan the request from its alias's routing tree, then apply the circuit breakers.

Planning is pure (``stages.routing.Router``, one per config version: ``infra.derived.Derived``); the live
inputs come from the ``HealthMonitor`` (per-target latency, in-flight counts and breaker states,
shared by every routing replica through NATS). An open breaker drops its target from the plan; a
half-open one lets this request probe it, first in the plan, with the rest of the plan as its safety
net. When every target is open the request fails fast with a 503 and when to come back.

Tenant policy: the request's merged access rules (``envelope.access``, from the policy stage) leave the
targets that do not qualify out of the plan before the breakers see it (never tried, never counted);
they are recorded in ``envelope.skipped_targets`` (target id -> why) and counted on ``route.planned``
(``policy_skipped``). When none qualifies the request ends here: 403 ``policy_denied``.
"""

from __future__ import annotations

import os
import random

from msgspec import UNSET

from infra import bootstrap
from infra.derived import Derived
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.envelope import Envelope
from schemas.errors import GatewayError
from schemas.events import EventType, StageAttrs
from stages.breaker_plan import apply_breakers
from stages.governance.access import no_qualifying_target
from stages.routing import RequestFacts, Router
from stages.timing import with_stage_time
from workers.app import main
from workers.context import WorkerContext
from workers.health_monitor import HealthMonitor
from workers.process_metrics import BreakerCollector
from workers.worker import StageWorker

STAGE = "routing"


def build_router(config: GatewayConfig) -> Router:
    book = bootstrap.price_book(config)
    return Router(config, lambda target: book.price_for(
        target, config.providers[target.provider].type if target.provider in config.providers else target.provider))


def facts_of(envelope: Envelope) -> RequestFacts:
    return RequestFacts(model=envelope.model_requested, endpoint=envelope.endpoint, stream=envelope.stream,
                        tenant=envelope.tenant or "", api_key=envelope.api_key_id or "", user=envelope.user,
                        tags=envelope.tags, headers=envelope.headers, body=envelope.body)


class RoutingWorker(StageWorker):
    name = STAGE
    subject = subjects.REQ_ROUTE

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        live = self.live = ctx.live
        self.routers = Derived(build_router).follow(live)  # one per config version, built before it serves
        self.monitor = HealthMonitor(lambda: self.runtime.nc, lambda: live.current.circuit_breaker,
                                     f"{STAGE}-{os.getpid()}", config_version=lambda: live.version)
        ctx.metrics.register(BreakerCollector(self.monitor))
        self.rng = random.Random()

    async def work(self, envelope: Envelope, started: float) -> None:
        live = self.live
        version = live.version
        router = self.routers.get(version, live.current)
        monitor = self.monitor
        access = envelope.access
        plan = router.plan(facts_of(envelope), monitor, self.rng, access)
        if access is not None and not plan.targets:  # the policy ruled out every target: recorded, refused
            out = with_stage_time(envelope, STAGE, started, config_version=version, skipped_targets=plan.skipped)
            await self.runtime.fail(out, no_qualifying_target(envelope.model_requested, access, plan.skipped),
                                    started, EventType.ROUTING_FAILED)
            return
        try:
            targets, skipped = await apply_breakers(plan, monitor, envelope.model_requested)
        except GatewayError as exc:  # every remaining target's breaker open: the policy's skips still recorded
            out = with_stage_time(envelope, STAGE, started, config_version=version, skipped_targets=plan.skipped)
            await self.runtime.fail(out, exc, started, EventType.ROUTING_FAILED)
            return
        monitor.note_routed(targets[0].id)
        out = with_stage_time(envelope, STAGE, started, plan=targets, config_version=version,
                              experiment=plan.experiment, variant=plan.variant, skipped_targets=plan.skipped)
        attrs = StageAttrs(targets=[t.id for t in targets],
                           policy_skipped=len(plan.skipped) if access is not None else UNSET,
                           breaker_open=skipped or UNSET,
                           probe=targets[0].id if targets[0].probe else UNSET,
                           experiment=plan.experiment or UNSET, variant=plan.variant if plan.experiment else UNSET)
        out = self.runtime.event(out, EventType.ROUTE_PLANNED, started, attrs=attrs)
        await self.runtime.forward(subjects.REQ_CALL, out)

    async def after_start(self) -> None:
        await self.monitor.start()

    async def reconnected(self) -> None:
        await self.monitor.reconnected()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.monitor.stop()


setup = RoutingWorker.setup


if __name__ == "__main__":
    main("routing")
