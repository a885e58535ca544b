"""ReplyWaiter: per-request reply subjects, routing to the right queue, late replies dropped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from ingress.replies import ReplyWaiter


def msg(subject: str, payload: dict[str, Any]) -> Any:
    return SimpleNamespace(subject=subject, data=orjson.dumps(payload))


def test_subject_naming() -> None:
    waiter = ReplyWaiter("ing-7")
    assert waiter.prefix == "gw.reply.ing-7"
    assert waiter.wildcard == "gw.reply.ing-7.*"
    assert waiter.subject_for("0190f0c4-abcd") == "gw.reply.ing-7.0190f0c4-abcd"


async def test_message_goes_to_its_own_queue() -> None:
    waiter = ReplyWaiter("ing")
    q1, q2 = waiter.open("r1"), waiter.open("r2")
    assert len(waiter) == 2
    await waiter.on_message(msg(waiter.subject_for("r2"), {"kind": "response", "request_id": "r2"}))
    assert q1.empty()
    assert q2.get_nowait() == {"kind": "response", "request_id": "r2"}
    assert waiter.late_replies == 0


async def test_stream_messages_keep_their_order() -> None:
    waiter = ReplyWaiter("ing")
    queue = waiter.open("r1")
    for seq in range(5):
        await waiter.on_message(msg(waiter.subject_for("r1"), {"kind": "chunk", "seq": seq}))
    await waiter.on_message(msg(waiter.subject_for("r1"), {"kind": "end"}))
    got = [queue.get_nowait() for _ in range(6)]
    assert [m.get("seq") for m in got] == [0, 1, 2, 3, 4, None]
    assert queue.empty()


async def test_late_replies_counted_and_dropped_after_close() -> None:
    waiter = ReplyWaiter("ing")
    queue = waiter.open("r1")
    waiter.close("r1")
    assert len(waiter) == 0
    await waiter.on_message(msg(waiter.subject_for("r1"), {"kind": "response"}))
    await waiter.on_message(msg(waiter.subject_for("never-opened"), {"kind": "error"}))
    assert waiter.late_replies == 2
    assert queue.empty()


async def test_close_unknown_is_harmless() -> None:
    waiter = ReplyWaiter("ing")
    waiter.close("ghost")
    assert len(waiter) == 0


async def test_reopen_gets_a_fresh_queue() -> None:
    waiter = ReplyWaiter("ing")
    old = waiter.open("r1")
    new = waiter.open("r1")
    await waiter.on_message(msg(waiter.subject_for("r1"), {"n": 1}))
    assert old.empty() and new.get_nowait() == {"n": 1}


async def test_waiting_caller_is_woken() -> None:
    waiter = ReplyWaiter("ing")
    queue = waiter.open("r1")
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    await waiter.on_message(msg(waiter.subject_for("r1"), {"kind": "response"}))
    assert await asyncio.wait_for(getter, 1) == {"kind": "response"}
