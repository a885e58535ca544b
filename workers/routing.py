"""Routing worker: turn the model alias into an ordered plan of targets."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import NatsBroker

from infra import bootstrap
from infra.settings import Settings
from schemas import subjects
from schemas.envelope import Envelope
from stages.routing import plan_for
from workers.app import Hooks, main
from workers.runtime import StageRuntime, with_stage_time

STAGE = "routing"


async def setup(broker: NatsBroker, settings: Settings) -> Hooks:
    config = bootstrap.config(settings)
    runtime = StageRuntime(broker, STAGE, settings.ack_wait_s)

    async def work(envelope: Envelope, started: float) -> None:
        plan = plan_for(envelope.model_requested, config)
        out = with_stage_time(envelope, STAGE, started, plan=plan)
        out = runtime.event(out, "route.planned", started, attrs={"targets": [f"{t.provider}/{t.model}" for t in plan]})
        await runtime.forward(subjects.REQ_CALL, out)

    @broker.subscriber(subjects.REQ_ROUTE, queue=subjects.QUEUE_GROUPS[subjects.REQ_ROUTE],
                       no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_request(data: bytes) -> None:
        await runtime.run(data, work)

    return Hooks()


if __name__ == "__main__":
    main("routing", setup)
