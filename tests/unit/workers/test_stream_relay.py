"""StreamRelay, the provider stage's side of a stream: nothing a provider streamed is lost to a filter
replica that dies or to a broker restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from schemas import subjects
from schemas.control import StreamAck
from schemas.envelope import Envelope, StreamPiece
from schemas.errors import ServiceUnavailable
from schemas.wire import convert, decode, encode
from tests.support.fake_nats import NO_RESPONDERS, FakeMsg, FakeNats, context
from workers import stream_relay
from workers.runtime import StageRuntime
from workers.stream_relay import StreamRelay

RID = "0190f0c4-0000-7000-8000-0000000000aa"


def envelope(**update: Any) -> Envelope:
    return convert({"request_id": RID, "received_at": 1.0e9, "deadline": 4.0e9,
                                    "reply_to": "gw.reply.ing.r", "stream": True, "model_requested": "m",
                                    "body": {"model": "m", "messages": []}, **update}, Envelope)


class FilterReplica:
    """A filter replica on its own subject: keeps the pieces in order, answers pings and the last piece."""

    def __init__(self, nc: FakeNats, subject: str) -> None:
        self.nc = nc
        self.subject = subject
        self.pieces: list[int] = []
        self.alive = True
        self.drop_next = 0  # pieces lost on the way (a broker restart)
        nc.subs[subject] = self.on_message

    async def on_message(self, msg: FakeMsg) -> None:
        if not self.alive:
            if msg.reply:
                await self.nc.subs[msg.reply.rsplit(".", 1)[0] + ".*"](
                    FakeMsg(msg.reply, b"", "", {"Status": "503"}))
            return
        ack: StreamAck
        if msg.headers and msg.headers.get("Gw-Kind") == "ping":
            ack = StreamAck(next=len(self.pieces))
        else:
            piece = decode(msg.data, StreamPiece)
            if self.drop_next:
                self.drop_next -= 1
                return
            in_order = piece.seq == len(self.pieces)
            if in_order:
                self.pieces.append(piece.seq)
            taken = in_order and piece.final is not None
            ack = StreamAck(taken=True) if taken else StreamAck(next=len(self.pieces))
        if msg.reply:
            await self.nc.publish(msg.reply, encode(ack))


async def delivered() -> None:
    """Let the fake broker deliver what was published (it hands messages over in tasks)."""
    for _ in range(10):
        await asyncio.sleep(0)


def relay_over(nc: FakeNats) -> StreamRelay:
    return StreamRelay(StageRuntime(context(nc), "provider"), envelope())


async def test_pieces_go_in_order_and_the_end_is_confirmed() -> None:
    nc = FakeNats(answers={subjects.RESP_FILTER_OPEN: b"gw.resp.filter.inst.a"})
    replica = FilterReplica(nc, "gw.resp.filter.inst.a")
    relay = relay_over(nc)
    await relay.open()
    for i in range(3):
        await relay.send({"n": i})
    await relay.finish(envelope(), None)
    await relay.close()
    assert relay.taken and replica.pieces == [0, 1, 2, 3] and relay.replicas == 1


async def test_a_replica_that_died_is_replaced_and_given_every_piece_again() -> None:
    nc = FakeNats(answers={subjects.RESP_FILTER_OPEN: b"gw.resp.filter.inst.a"})
    first = FilterReplica(nc, "gw.resp.filter.inst.a")
    second = FilterReplica(nc, "gw.resp.filter.inst.b")
    relay = relay_over(nc)
    await relay.open()
    for i in range(3):
        await relay.send({"n": i})
    await delivered()
    first.alive = False  # killed: nobody subscribes to its subject any more
    nc.answers[subjects.RESP_FILTER_OPEN] = b"gw.resp.filter.inst.b"
    await relay.finish(envelope(), None)
    await relay.close()
    assert first.pieces == [0, 1, 2]
    assert second.pieces == [0, 1, 2, 3]  # the whole stream, from its first piece
    assert relay.replicas == 2 and relay.taken


async def test_pieces_lost_on_the_way_are_sent_again() -> None:
    nc = FakeNats(answers={subjects.RESP_FILTER_OPEN: b"gw.resp.filter.inst.a"})
    replica = FilterReplica(nc, "gw.resp.filter.inst.a")
    relay = relay_over(nc)
    await relay.open()
    await relay.send({"n": 0})
    await delivered()
    replica.drop_next = 2
    await relay.send({"n": 1})
    await relay.send({"n": 2})  # both lost
    await relay.finish(envelope(), None)  # the answer says "next: 1": 1, 2 and the end go again
    await relay.close()
    assert replica.pieces == [0, 1, 2, 3] and relay.taken


async def test_pings_catch_up_while_the_provider_still_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_relay, "PING_EVERY_S", 0.01)
    nc = FakeNats(answers={subjects.RESP_FILTER_OPEN: b"gw.resp.filter.inst.a"})
    replica = FilterReplica(nc, "gw.resp.filter.inst.a")
    relay = relay_over(nc)
    await relay.open()
    replica.drop_next = 1
    await relay.send({"n": 0})
    for _ in range(100):
        if replica.pieces == [0]:
            break
        await asyncio.sleep(0.01)
    await relay.close()
    assert replica.pieces == [0]


async def test_no_replica_at_all_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_relay, "HAND_OVER_GIVE_UP_S", 0.3)
    relay = relay_over(FakeNats(answers={subjects.RESP_FILTER_OPEN: NO_RESPONDERS}))
    with pytest.raises(ServiceUnavailable):
        await relay.open()
