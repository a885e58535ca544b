"""Settlement of one record's view over an in-memory ledger: actual cost, once, failures release."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import msgspec
from nats.aio.client import Client as NatsClient

from infra.jetstream import LAST_FETCH_S
from infra.key_directory import config_directory
from infra.ledger import Ledger
from infra.nats_server import EmbeddedNats
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.events import ControlEvent, RequestCompleted
from schemas.governance import KeyDirectory
from schemas.ids import uuid7
from schemas.wire import decode, encode
from stages.governance.admission import Ask, Decision, admit
from stages.governance.draft import Draft
from stages.governance.scopes import Scope, scope_of
from tests.support.fake_kv import FakeKV
from tests.support.fake_nats import FakeNats
from tests.support.jetstream import all_acked, eventually, frozen_for
from workers.settlement import FETCH_WAIT_S, SettlementView, Settler, actual_nusd

SCOPE = Scope(key="key.k1", label="key.k1", level="key.k1", budget_nusd=10**9, period="month")


def _reserve(ask: Ask, draft: Draft) -> Decision:
    return admit(draft, SCOPE, ask)


def record(rid: str, cost: str | None, status: int = 200) -> bytes:
    return encode(RequestCompleted(event_id=uuid7(), request_id=rid, ts=time.time(), finished_at=time.time(),
                                   stage="output_filter", status_code=status, cost_usd=cost, prompt_tokens=3,
                                   completion_tokens=4, scopes=["key.k1"], hold_nusd=1000, hold_tokens=50,
                                   request_body='{"x": "\\"scopes\\": [1]"}'))


def test_the_view_reads_what_settlement_needs() -> None:
    view = msgspec.json.decode(record("r1", "0.000000250"), type=SettlementView)
    assert (view.request_id, view.cost_usd, view.scopes, view.hold_nusd) == ("r1", "0.000000250", ["key.k1"], 1000)
    assert actual_nusd(view) == 250
    assert actual_nusd(SettlementView(request_id="r", cost_usd=None)) == 0
    assert actual_nusd(SettlementView(request_id="r", cost_usd="nonsense")) == 0


async def test_settles_once_at_actual_cost_and_releases_failures() -> None:
    ledger = Ledger(FakeKV(), Draft)  # type: ignore[arg-type]
    for rid in ("ok", "failed"):
        await ledger.apply("key.k1", partial(_reserve, Ask(rid, 1000, 50, time.time() + 60)))
    settler = Settler(lambda: FakeNats(), lambda: ledger, KeyDirectory)  # type: ignore[arg-type,return-value]
    ok = msgspec.json.decode(record("ok", "0.000000250"), type=SettlementView)
    await settler.settle(ok)
    await settler.settle(ok)  # redelivered: counted once
    await settler.settle(msgspec.json.decode(record("failed", None, 502), type=SettlementView))
    state = await ledger.read("key.k1")
    assert state.spent_nusd == 250 and state.holds == {}
    assert sum(state.tokens.values()) == 14  # both corrected from 50 to 7 actual tokens


class _JetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None,
                      timeout: float | None = None) -> None:
        self.published.append((subject, payload))


class _Nats:
    def __init__(self) -> None:
        self.js = _JetStream()

    def jetstream(self) -> _JetStream:
        return self.js


async def test_crossing_the_soft_threshold_records_one_budget_event() -> None:
    config = GatewayConfig.model_validate({"keys": [
        {"id": "k1", "key_sha256": "a" * 64, "tenant": "t",
         "limits": {"budget_usd": "0.000001", "alert_at": 0.5, "budget_period": "month"}}]})
    directory = config_directory(config)
    scope = scope_of(directory, "key.k1")
    assert scope is not None
    ledger = Ledger(FakeKV(), Draft)  # type: ignore[arg-type]
    for rid in ("a", "b"):
        await ledger.apply("key.k1", partial(admit, scope=scope, ask=Ask(rid, 400, 1, time.time() + 60)))
    nc = _Nats()
    settler = Settler(lambda: nc, lambda: ledger, lambda: directory)  # type: ignore[arg-type,return-value]
    for rid in ("a", "b"):
        await settler.settle(SettlementView(request_id=rid, cost_usd="0.0000004", scopes=["key.k1"]))
    [(subject, payload)] = nc.js.published  # 400 of 1000 n$: no alert; 800: one
    event = decode(payload, ControlEvent)
    assert subject == subjects.EVT_CONTROL and (event.kind, event.subject) == ("budget", "key.k1")
    assert event.attrs.spent_usd == "0.0000008"


async def test_once_stopped_the_consumer_lets_the_connection_drain_at_once(nc: NatsClient) -> None:
    """nats-py's fetch takes messages without marking them done: a pull subscription left behind would
    hold the process's drain at shutdown until its timeout (and log a cancelled gather)."""
    js = nc.jetstream()
    ledger: Ledger[Draft] = Ledger(FakeKV(), Draft)  # type: ignore[arg-type]
    settler = Settler(lambda: nc, lambda: ledger, KeyDirectory)  # type: ignore[arg-type,return-value]
    settler.start()
    for i in range(3):
        await js.publish(subjects.governed_event_subject("output_filter"), record(f"r{i}", "0.000000250"))
    await eventually(lambda: settler.settled == 3, what="records settled")
    await asyncio.sleep(10 * FETCH_WAIT_S)  # idle fetches too: each leaves a status message behind
    await settler.stop()
    drained = asyncio.ensure_future(nc.drain())  # nats-py's own bound is 30 s; a clean drain takes ms
    done, _ = await asyncio.wait({drained}, timeout=10.0)
    assert drained in done, "the connection's drain waits on the stopped consumer's subscription"


async def test_a_stopping_consumer_settles_what_the_broker_sent_after_its_pull_gave_up(
        nc: NatsClient, server: EmbeddedNats) -> None:
    # The broker is frozen while the consumer pulls (each pull gives up unanswered) and a record is
    # published; the stop is asked before the broker comes back. The record is settled and acked by this
    # consumer, not left delivered to a subscription that has gone (another replica would settle it
    # only after the consumer's 10 s ack wait).
    js = nc.jetstream()
    ledger: Ledger[Draft] = Ledger(FakeKV(), Draft)  # type: ignore[arg-type]
    settler = Settler(lambda: nc, lambda: ledger, KeyDirectory)  # type: ignore[arg-type,return-value]
    settler.start()
    await js.publish(subjects.governed_event_subject("output_filter"), record("r0", "0.000000250"))
    await eventually(lambda: settler.settled == 1, what="the first record settled")
    async with frozen_for(server.process.pid, 3 * FETCH_WAIT_S + LAST_FETCH_S / 2):
        await asyncio.sleep(3 * FETCH_WAIT_S)  # pulls that give up unanswered
        await nc.publish(subjects.governed_event_subject("output_filter"), record("r1", "0.000000250"))
        await settler.stop()
    assert settler.settled == 2
    assert await all_acked(js, subjects.STREAM_EVENTS, subjects.CONSUMER_LEDGER) == (0, 0)
