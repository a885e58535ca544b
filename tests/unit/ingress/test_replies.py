"""ReplyWaiter: answers to the right request, in order, once; confirmations; the chain's questions."""

from __future__ import annotations

import asyncio
from typing import Any

from ingress.replies import ReplyWaiter
from schemas.control import IngressState, ReplyAck, Resend
from schemas.envelope import Reply
from schemas.wire import decode, encode
from tests.support.fake_nats import FakeMsg, FakeNats

INBOX = "_GW_INBOX.x.1"


def reply(request_id: str, kind: str = "response", reply_to: str = INBOX, **fields: Any) -> FakeMsg:
    data = encode(Reply(kind=kind, request_id=request_id, **fields))  # type: ignore[arg-type]
    return FakeMsg(f"gw.reply.ing.{request_id}", data, reply_to)


def chunk(request_id: str, seq: int, src: str = "gw.resp.filter.inst.f1", delivery: int = 1,
          text: str = "some text") -> FakeMsg:
    body = {"n": seq, "choices": [{"index": 0, "delta": {"content": text}}]}
    return reply(request_id, "chunk", reply_to="", seq=seq, body=body, src=src, delivery=delivery)


def check(request_id: str, delivery: int = 2) -> FakeMsg:
    return FakeMsg(f"gw.reply.ing.{request_id}", b"", INBOX, {"Gw-Kind": "check", "Gw-Delivery": str(delivery)})


def answers(nc: FakeNats, kind: type[ReplyAck] | type[IngressState] = ReplyAck) -> list[Any]:
    """What the waiter answered on the sender's inbox, decoded as ``kind``."""
    return [decode(s.data, kind) for s in nc.sent if s.subject == INBOX]


def waiter_with(nc: FakeNats) -> ReplyWaiter:
    return ReplyWaiter("ing", lambda: nc)  # type: ignore[arg-type, return-value]


def test_subject_naming() -> None:
    waiter = ReplyWaiter("ing-7")
    assert waiter.prefix == "gw.reply.ing-7"
    assert waiter.wildcard == "gw.reply.ing-7.*"
    assert waiter.subject_for("0190f0c4-abcd") == "gw.reply.ing-7.0190f0c4-abcd"


async def test_an_answer_goes_to_its_own_request_and_is_confirmed() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    p1, p2 = waiter.open("r1"), waiter.open("r2")
    await waiter.on_message(reply("r2", status=200, body={"ok": 1}))
    assert p1.queue.empty()
    got = p2.queue.get_nowait()
    assert (got.kind, got.body) == ("response", {"ok": 1})
    assert answers(nc) == [ReplyAck()]


async def test_a_second_answer_is_refused_as_gone() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1")
    await waiter.on_message(reply("r1"))
    await waiter.on_message(reply("r1"))  # a stalled run woke up, or a confirmation was lost
    assert pending.queue.qsize() == 1
    assert [a.state for a in answers(nc)] == ["ok", "gone"]


async def test_stream_chunks_are_put_in_order_once_and_a_gap_is_asked_for() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1", stream=True)
    for seq in (0, 2, 3, 0, 1):  # 1 went missing and comes later; 0 twice (a replay)
        await waiter.on_message(chunk("r1", seq))
    got = [pending.queue.get_nowait().seq for _ in range(pending.queue.qsize())]
    assert got == [0, 1, 2, 3]
    (ask,) = [s for s in nc.sent if s.subject == "gw.resp.filter.inst.f1"]  # once, though two arrived early
    assert ask.headers == {"Gw-Kind": "resend"}
    assert decode(ask.data, Resend) == Resend(request_id="r1", from_seq=1)


async def test_an_end_before_its_chunks_asks_for_them() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1", stream=True)
    await waiter.on_message(chunk("r1", 0))
    await waiter.on_message(reply("r1", "end", seq=3))
    assert answers(nc) == [ReplyAck(state="resend", resend_from=1)]
    for seq in (1, 2):
        await waiter.on_message(chunk("r1", seq))
    await waiter.on_message(reply("r1", "end", seq=3))
    assert [pending.queue.get_nowait().kind for _ in range(4)] == ["chunk", "chunk", "chunk", "end"]
    assert answers(nc)[-1] == ReplyAck()


async def test_late_and_unknown_answers_are_gone() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1")
    waiter.close("r1")
    await waiter.on_message(reply("r1"))
    await waiter.on_message(reply("never-opened", "error"))
    assert waiter.late_replies == 2 and pending.queue.empty() and len(waiter) == 0
    assert [a.state for a in answers(nc)] == ["gone", "gone"]


async def test_a_rerun_is_followed_while_the_caller_has_nothing() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1", stream=True)
    await waiter.on_message(check("r1", delivery=2))
    assert answers(nc, IngressState) == [IngressState(state="waiting")]
    await waiter.on_message(chunk("r1", 0, delivery=1))  # the dead run's chunk: void now
    await waiter.on_message(chunk("r1", 0, delivery=2))
    assert pending.queue.qsize() == 1 and pending.queue.get_nowait().delivery == 2


async def test_a_rerun_cannot_continue_half_a_stream() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1", stream=True)
    await waiter.on_message(chunk("r1", 0))
    await waiter.on_message(check("r1", delivery=2))
    (state,) = answers(nc, IngressState)
    assert state.state == "done" and state.error is not None and state.error.code == "stream_interrupted"
    assert [pending.queue.get_nowait().kind for _ in range(2)] == ["chunk", "error"]  # the caller is told
    await waiter.on_message(check("r1", delivery=3))
    assert answers(nc, IngressState)[-1] == state  # asked again: the same answer


async def test_a_rerun_replaces_a_stream_that_only_opened() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    pending = waiter.open("r1", stream=True)
    await waiter.on_message(chunk("r1", 0, text=""))  # the opening (role) chunk: no answer text yet
    await waiter.on_message(check("r1", delivery=2))
    assert answers(nc, IngressState) == [IngressState(state="waiting")]
    await waiter.on_message(chunk("r1", 0, delivery=2, text=""))  # the rerun's opening: the caller has one
    await waiter.on_message(chunk("r1", 1, delivery=2))
    await waiter.on_message(reply("r1", "end", delivery=2, seq=2))
    got = [pending.queue.get_nowait() for _ in range(pending.queue.qsize())]
    assert [(r.kind, r.delivery, r.seq) for r in got] == [("chunk", 1, 0), ("chunk", 2, 1), ("end", 2, 2)]


async def test_a_rerun_of_an_answered_request_learns_its_outcome() -> None:
    nc = FakeNats()
    waiter = waiter_with(nc)
    waiter.open("r1")
    await waiter.on_message(reply("r1", "error", error={"status_code": 400, "type": "invalid_request_error",
                                                        "message": "no", "code": "content_blocked"}))
    waiter.close("r1")
    await waiter.on_message(check("r1"))
    await waiter.on_message(check("unknown"))
    sent = [s.data for s in nc.sent if s.subject == INBOX]
    assert decode(sent[0], ReplyAck) == ReplyAck()  # the error reply confirmed
    done, gone = (decode(data, IngressState) for data in sent[1:])
    assert (done.state, done.status, done.error and done.error.code) == ("done", 400, "content_blocked")
    assert gone.state == "gone"


async def test_waiting_caller_is_woken() -> None:
    waiter = waiter_with(FakeNats())
    pending = waiter.open("r1")
    getter = asyncio.create_task(pending.queue.get())
    await asyncio.sleep(0)
    await waiter.on_message(reply("r1"))
    assert (await asyncio.wait_for(getter, 1)).kind == "response"
