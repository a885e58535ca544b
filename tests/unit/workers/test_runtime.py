"""The stage runtime: the completion record, and how a request ends (record, answer, ack)."""

from __future__ import annotations

import asyncio
import time
import types
from functools import partial
from typing import Any

import pytest

from infra.ledger import Ledger
from schemas import subjects
from schemas.control import IngressState
from schemas.envelope import Reply
from schemas.errors import ContentBlocked
from schemas.events import EventType, RequestCompleted
from schemas.governance import Admission, KeyDirectory, RateLimitStatus
from schemas.wire import decode, encode
from stages.governance.admission import Ask, admit
from stages.governance.draft import Draft
from stages.governance.scopes import Scope
from tests.support.fake_kv import FakeKV
from tests.support.fake_nats import NO_RESPONDERS, FakeNats, context, settled
from tests.unit.schemas.test_events import RECEIVED, VERDICTS, make_envelope
from workers import runtime
from workers.leases import ACK
from workers.runtime import StageRuntime


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Frozen wall clock and perf counter for workers.runtime."""
    fake = types.SimpleNamespace(now=RECEIVED + 1.5, perf=100.0)
    monkeypatch.setattr(runtime, "time", types.SimpleNamespace(time=lambda: fake.now, perf_counter=lambda: fake.perf))
    return fake


async def test_a_blocked_request_publishes_its_verdicts(clock: types.SimpleNamespace) -> None:
    """The stage that blocks ends the request through ``fail``: the record carries the verdicts."""
    nc = FakeNats()
    ctx = context(nc)
    stage = StageRuntime(ctx, "output_filter")
    env = make_envelope(guardrail_profile="strict", verdicts=VERDICTS, ack_subject="$JS.ACK.x")
    await stage.fail(env, ContentBlocked("The response was blocked by the secrets guardrail."), 100.0,
                     EventType.RESPONSE_BLOCKED)
    await settled(ctx, stage)
    by_subject = dict(nc.published)
    assert set(by_subject) == {env.reply_to, subjects.event_subject("output_filter"), "$JS.ACK.x"}
    record = decode(by_subject[subjects.event_subject("output_filter")], RequestCompleted)
    assert (record.status_code, record.error_code, record.guardrail_profile) == (400, "content_blocked", "strict")
    assert record.verdicts == VERDICTS


# -- ending a request: record, answer, ack ------------------------------------------------------------


async def test_finish_records_then_answers_then_acks_once_both_are_confirmed() -> None:
    nc = FakeNats()
    ctx = context(nc)
    stage = StageRuntime(ctx, "output_filter")
    env = make_envelope(ack_subject="$JS.ACK.GW_REQ.redaction.1.7.7.0.0")
    ctx.leases.hold(env.ack_subject)  # as ``accept`` does
    await stage.finish(env, status=200, body={"choices": []})
    ctx.leases.release(env.ack_subject)  # as ``run`` does when the stage's work returns
    # record and answer are on the wire at once, in that order; the ack waits for both confirmations
    assert [s.subject for s in nc.sent] == [subjects.event_subject("output_filter"), env.reply_to]
    assert nc.sent[0].headers == {"Nats-Msg-Id": env.request_id}  # JetStream keeps one record per request
    assert env.ack_subject in ctx.leases  # held until acked
    await settled(ctx, stage)
    assert nc.sent[-1].subject == env.ack_subject and nc.sent[-1].data == ACK
    assert env.ack_subject not in ctx.leases
    reply = decode(nc.sent[1].data, Reply)
    assert (reply.kind, reply.status, reply.body) == ("response", 200, {"choices": []})


async def test_no_ack_while_the_record_is_not_stored() -> None:
    nc = FakeNats(answers={subjects.EVT_PREFIX: None})  # JetStream never answers
    ctx = context(nc)
    stage = StageRuntime(ctx, "policy")
    env = make_envelope(ack_subject="$JS.ACK.x")
    await stage.finish(env, status=200, body={})
    for _ in range(20):
        await asyncio.sleep(0)
    assert "$JS.ACK.x" not in [s.subject for s in nc.sent]
    assert env.ack_subject in ctx.leases  # still held: +WPI keeps it from redelivery while we retry
    nc.answers.clear()  # the broker is back: the record is sent again and stored
    await stage.drain(5.0)
    assert nc.sent[-1].subject == "$JS.ACK.x"
    assert len(nc.on(subjects.event_subject("policy"))) >= 2


async def test_an_answer_nobody_waits_for_is_acked_after_the_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "REPLY_GIVE_UP_S", 0.2)
    nc = FakeNats(answers={"gw.reply.": NO_RESPONDERS})  # its ingress is gone
    ctx = context(nc)
    stage = StageRuntime(ctx, "output_filter")
    env = make_envelope(ack_subject="$JS.ACK.y")
    await stage.finish(env, status=200, body={})
    await stage.drain(5.0)
    assert len(nc.on(env.reply_to)) > 1  # offered again while ingress could be reconnecting
    assert nc.sent[-1].subject == "$JS.ACK.y"  # then given up: the record is stored, the request ends


async def test_a_stream_end_resends_missing_chunks_before_it_is_confirmed() -> None:
    answers = iter([b'{"state":"resend","resend_from":3}', b'{"state":"ok"}'])
    nc = FakeNats()

    async def ingress(msg: Any) -> None:
        await nc.publish(msg.reply, next(answers))

    nc.subs["gw.reply.ing.r"] = ingress
    ctx = context(nc)
    stage = StageRuntime(ctx, "output_filter")
    resent: list[int] = []

    async def resend(from_seq: int) -> None:
        resent.append(from_seq)

    end = Reply(kind="end", request_id="r", seq=5)
    await stage.finish(make_envelope(ack_subject="$JS.ACK.z"), status=200, reply=end, resend=resend)
    await stage.drain(5.0)
    assert resent == [3]
    assert len(nc.on("gw.reply.ing.r")) == 2 and nc.sent[-1].subject == "$JS.ACK.z"


# -- reruns ----------------------------------------------------------------------------------------------


async def test_accept_holds_the_request_until_its_work_returns() -> None:
    nc = FakeNats()
    ctx = context(nc)
    stage = StageRuntime(ctx, "redaction")
    gate = asyncio.Event()
    seen: list[int] = []

    async def work(envelope: Any, started: float) -> None:
        seen.append(envelope.delivery)
        await gate.wait()

    ack = "$JS.ACK.GW_REQ.redaction.2.9.9.0.0"
    stage.accept(encode(make_envelope(deadline=4e9)), work, ack_subject=ack)
    await asyncio.sleep(0)
    assert ack in ctx.leases and seen == [2]
    gate.set()
    await stage.drain(1.0)
    assert ack not in ctx.leases


@pytest.mark.parametrize(("state", "status", "code"), [
    (IngressState(state="done", status=200), 200, ""),
    (IngressState(state="gone"), 499, "client_gone"),
])
async def test_a_rerun_of_an_answered_request_only_records_it(state: IngressState, status: int, code: str) -> None:
    nc = FakeNats()
    ctx = context(nc)
    stage = StageRuntime(ctx, "redaction")
    env = make_envelope(deadline=4e9, delivery=2, ack_subject="$JS.ACK.r")
    assert not await stage.settle_rerun(env, state, 0.0)
    await stage.drain(1.0)
    assert env.reply_to not in [s.subject for s in nc.sent]  # nobody is answered twice
    (record,) = [decode(d, RequestCompleted) for d in nc.on(subjects.event_subject("redaction"))]
    assert (record.status_code, record.error_code, record.request_body) == (status, code, "")
    assert nc.sent[-1].subject == "$JS.ACK.r"


async def test_a_waiting_caller_gets_the_rerun_but_not_forever() -> None:
    nc = FakeNats()
    stage = StageRuntime(context(nc), "redaction")
    assert await stage.settle_rerun(make_envelope(delivery=2), IngressState(state="waiting"), 0.0)
    assert not await stage.settle_rerun(make_envelope(delivery=runtime.MAX_RUNS + 1, deadline=4e9),
                                        IngressState(state="waiting"), 0.0)
    await stage.drain(1.0)
    reply = decode(nc.on("gw.reply.ing.r")[0], Reply)
    assert reply.error is not None and reply.error.code == "repeated_failure"


async def test_check_rerun_asks_the_waiting_ingress() -> None:
    nc = FakeNats()

    async def ingress(msg: Any) -> None:
        assert msg.headers == {"Gw-Kind": "check", "Gw-Delivery": "2"}
        await nc.publish(msg.reply, encode(IngressState(state="waiting")))

    nc.subs["gw.reply.ing.r"] = ingress
    stage = StageRuntime(context(nc), "redaction")
    assert (await stage.check_rerun(make_envelope(delivery=2))).state == "waiting"


async def test_a_rerun_steps_aside_while_an_earlier_run_is_alive() -> None:
    """A restarted broker redelivers what live processes hold: the live run finishes the request."""
    nc = FakeNats(answers={"gw.ctl.held.": b"held"})
    stage = StageRuntime(context(nc), "redaction")
    env = make_envelope(delivery=2, deadline=4e9, ack_subject="$JS.ACK.h")
    state = await stage.check_rerun(env)
    assert state.state == "held"
    assert not await stage.settle_rerun(env, state, 0.0)
    await stage.drain(1.0)
    assert [s.subject for s in nc.sent] == ["gw.ctl.held.0190f0c4-0000-7000-8000-000000000001"]  # nothing else


async def test_check_rerun_of_a_gone_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "CHECK_GIVE_UP_S", 0.2)
    stage = StageRuntime(context(FakeNats(answers={"gw.reply.": NO_RESPONDERS})), "redaction")
    assert (await stage.check_rerun(make_envelope(delivery=2))).state == "gone"


async def test_then_runs_however_the_request_ended() -> None:
    """The first stage's intake credit comes back even for a request refused before any work."""
    stage = StageRuntime(context(FakeNats()), "redaction")
    done: list[str] = []

    async def then() -> None:
        done.append("room")

    async def work(envelope: Any, started: float) -> None:
        raise AssertionError("an expired request is never worked on")

    expired = encode(make_envelope(deadline=RECEIVED + 1))
    stage.accept(expired, work, ack_subject="$JS.ACK.GW_REQ.redaction.1.5.5.0.0", then=then)
    await stage.drain(1.0)
    assert done == ["room"]


async def test_a_governed_request_is_settled_where_it_ends_before_its_record_and_answer_leave() -> None:
    nc = FakeNats()
    ctx = context(nc)
    ledger = Ledger(FakeKV(), Draft)  # type: ignore[arg-type]
    ctx.use_ledger(ledger)
    ctx.key_directory = types.SimpleNamespace(get=KeyDirectory)  # type: ignore[assignment]
    scope = Scope(key="key.k1", label="key.k1", level="key.k1", budget_nusd=10**9, period="month")
    env = make_envelope(admission=Admission(scopes=["key.k1"], hold_nusd=5_000, hold_tokens=30),
                        cost_usd="0.000001")
    await ledger.apply("key.k1", partial(admit, scope=scope,
                                         ask=Ask(env.request_id, 5_000, 30, expires_at=time.time() + 3600)))
    stage = StageRuntime(ctx, "output_filter")
    await stage.finish(env, status=200, body={"choices": []})
    await settled(ctx, stage)
    state = await ledger.read("key.k1")
    assert state.holds == {} and state.spent_nusd == 1_000  # the actual cost, not the reservation
    subjects_sent = [subject for subject, _ in nc.published]
    assert subjects.event_subject("output_filter") in subjects_sent  # no second delivery to the ledger consumer
    assert subjects.governed_event_subject("output_filter") not in subjects_sent
    assert ctx.settler.settled == 1


async def test_a_governed_request_whose_settlement_fails_here_is_left_to_the_ledger_consumer() -> None:
    nc = FakeNats()  # no ledger bucket behind it: settling here fails
    ctx = context(nc)
    stage = StageRuntime(ctx, "output_filter")
    status = RateLimitStatus(limit_requests=10, remaining_requests=9, reset_requests_s=1.0)
    env = make_envelope(admission=Admission(scopes=["key.k1"], hold_nusd=5, hold_tokens=3, ratelimit=status))
    await stage.finish(env, status=200, body={"choices": []})
    await settled(ctx, stage)
    by_subject = dict(nc.published)
    record = decode(by_subject[subjects.governed_event_subject("output_filter")], RequestCompleted)
    assert (record.scopes, record.hold_nusd, record.hold_tokens) == (["key.k1"], 5, 3)
    assert decode(by_subject[env.reply_to], Reply).ratelimit == status