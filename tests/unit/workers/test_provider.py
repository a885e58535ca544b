"""The provider stage's hand-over of a whole answer: held until a filter replica confirms it took it."""

from __future__ import annotations

import asyncio

import pytest

from infra.live_config import LiveConfig
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.envelope import Envelope
from schemas.wire import convert
from tests.support.fake_nats import FakeNats, context
from workers import provider
from workers.provider import ProviderWorker


def envelope() -> Envelope:
    return convert({"request_id": "r", "received_at": 1.0e9, "deadline": 4.0e9,
                                    "reply_to": "gw.reply.ing.r", "model_requested": "m",
                                    "body": {"model": "m", "messages": []}}, Envelope)


async def test_a_whole_answer_is_offered_again_until_a_replica_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider, "HAND_OVER_ATTEMPT_S", 0.05)
    nc = FakeNats(answers={subjects.RESP_FILTER: None})  # the replica that got it died before confirming
    stage = ProviderWorker(context(nc, LiveConfig.static(GatewayConfig())))
    try:
        task = asyncio.create_task(stage.hand_over(envelope()))
        for _ in range(100):
            if len(nc.on(subjects.RESP_FILTER)) >= 2:
                break
            await asyncio.sleep(0.01)
        nc.answers.clear()  # another replica takes it
        await asyncio.wait_for(task, 5)
        assert len(nc.on(subjects.RESP_FILTER)) >= 2
    finally:
        await stage.cleanup()
