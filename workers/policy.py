"""Policy worker: authenticate the key by hash, authorize model and input size, record the tenant.

Keys follow the live config (``workers/live_config.py``): a key added or removed takes effect without a
restart."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import NatsBroker

from infra import bootstrap
from infra.settings import Settings
from schemas import subjects
from schemas.envelope import Envelope
from stages.policy import KeyIndex, authenticate, authorize
from workers.app import Hooks, main
from workers.runtime import StageRuntime, with_stage_time

STAGE = "policy"


async def setup(broker: NatsBroker, settings: Settings) -> Hooks:
    live = await bootstrap.live_config(settings, STAGE)
    keys = [KeyIndex(live.current.keys)]  # rebuilt when the config changes (hot reload)
    live.on_change(lambda config, _version: keys.__setitem__(0, KeyIndex(config.keys)))
    runtime = StageRuntime(broker, STAGE, settings.ack_wait_s)

    async def work(envelope: Envelope, started: float) -> None:
        key = authenticate(keys[0], envelope.api_key_hash)
        size = authorize(key, envelope.model_requested, envelope.body)
        out = with_stage_time(envelope, STAGE, started, tenant=key.tenant, api_key_id=key.id)
        out = runtime.event(out, "request.authorized", started, attrs={"input_chars": size})
        await runtime.forward(subjects.REQ_ROUTE, out)

    @broker.subscriber(subjects.REQ_POLICY, queue=subjects.QUEUE_GROUPS[subjects.REQ_POLICY],
                       no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_request(data: bytes) -> None:
        await runtime.run(data, work)

    return Hooks(cleanup=live.stop)


if __name__ == "__main__":
    main("policy", setup)
