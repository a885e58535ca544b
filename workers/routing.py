"""Routing worker: plan the request from its alias's routing tree, then apply the circuit breakers.

Planning is pure (``stages.routing.Router``, one per config version, rebuilt on hot reload); the live
inputs come from the ``HealthMonitor`` (per-target latency, in-flight counts and breaker states,
shared by every routing replica through NATS). An open breaker drops its target from the plan; a
half-open one lets this request probe it, first in the plan, with the rest of the plan as its safety
net. When every target is open the request fails fast with a 503 and when to come back.
"""

from __future__ import annotations

import os
import random

from nats.aio.msg import Msg

from infra import bootstrap
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.envelope import Envelope
from schemas.events import EventType
from stages.breaker_plan import apply_breakers
from stages.routing import RequestFacts, Router
from stages.timing import with_stage_time
from workers.app import Hooks, main
from workers.context import WorkerContext
from workers.health_monitor import HealthMonitor
from workers.runtime import StageRuntime

STAGE = "routing"


def build_router(config: GatewayConfig) -> Router:
    book = bootstrap.price_book(config)
    return Router(config, lambda target: book.price_for(
        target, config.providers[target.provider].type if target.provider in config.providers else target.provider))


def facts_of(envelope: Envelope) -> RequestFacts:
    return RequestFacts(model=envelope.model_requested, endpoint=envelope.endpoint, stream=envelope.stream,
                        tenant=envelope.tenant or "", api_key=envelope.api_key_id or "", user=envelope.user,
                        tags=envelope.tags, headers=envelope.headers, body=envelope.body)


async def setup(ctx: WorkerContext) -> Hooks:
    live = ctx.live
    routers: dict[str, Router] = {}

    def router_now() -> tuple[str, Router]:
        """The current version and its router, built once per version (hot reload)."""
        version = live.version
        router = routers.get(version)
        if router is None:
            routers.clear()
            router = routers[version] = build_router(live.get(version) or live.current)
        return version, router

    runtime = StageRuntime(ctx, STAGE)
    monitor = HealthMonitor(lambda: runtime.nc, lambda: live.current.circuit_breaker, f"{STAGE}-{os.getpid()}",
                            config_version=lambda: live.version)
    rng = random.Random()
    router_now()  # built before the first request, not on it

    async def work(envelope: Envelope, started: float) -> None:
        version, router = router_now()
        plan = router.plan(facts_of(envelope), monitor, rng)
        targets, skipped = await apply_breakers(plan, monitor, envelope.model_requested)
        monitor.note_routed(targets[0].id)
        out = with_stage_time(envelope, STAGE, started, plan=targets, config_version=version,
                              experiment=plan.experiment, variant=plan.variant)
        attrs: dict[str, object] = {"targets": [t.id for t in targets]}
        if skipped:
            attrs["breaker_open"] = skipped
        if targets[0].probe:
            attrs["probe"] = targets[0].id
        if plan.experiment:
            attrs["experiment"], attrs["variant"] = plan.experiment, plan.variant
        out = runtime.event(out, EventType.ROUTE_PLANNED, started, attrs=attrs)
        await runtime.forward(subjects.REQ_CALL, out)

    async def on_request(msg: Msg) -> None:
        runtime.accept(msg.data, work)

    ctx.subscribe(subjects.REQ_ROUTE, on_request, queue=subjects.QUEUE_GROUPS[subjects.REQ_ROUTE])

    async def cleanup() -> None:
        await runtime.drain()
        await monitor.stop()

    return Hooks(after_start=monitor.start, cleanup=cleanup, reconnected=monitor.reconnected)


if __name__ == "__main__":
    main("routing")
