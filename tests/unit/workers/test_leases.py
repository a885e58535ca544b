"""Leases: a process signals +WPI for what it holds (and only that), one timer for all."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.fake_nats import FakeNats
from workers.leases import ACK, IN_PROGRESS, Leases, delivery_of


def never_called() -> Any:
    raise AssertionError("signalled although no period can have elapsed")


async def test_holds_are_counted() -> None:
    leases = Leases(never_called, ack_wait_s=3_000)
    try:
        leases.hold("ack.a")
        leases.hold("ack.a")
        leases.hold("ack.b")
        leases.release("ack.a")
        assert "ack.a" in leases and len(leases) == 2
        leases.release("ack.a")
        leases.release("ack.a")  # one release too many: harmless
        leases.release("ack.unknown")
        leases.release(None)
        assert "ack.a" not in leases and len(leases) == 1
    finally:
        await leases.stop()


async def test_nothing_held_without_an_ack_subject() -> None:
    leases = Leases(never_called, ack_wait_s=3_000)
    leases.hold(None)
    leases.hold("")
    assert len(leases) == 0 and leases._task is None  # no timer started for nothing
    await leases.stop()


async def test_a_tick_signals_only_what_was_held_a_whole_period() -> None:
    leases = Leases(never_called, ack_wait_s=3_000)
    leases.hold("old")
    assert leases.tick() == []  # held for less than a period: passing through, no signal needed
    leases.hold("new")
    leases.hold("gone")
    leases.release("gone")
    assert leases.tick() == ["old"]
    assert sorted(leases.tick()) == ["new", "old"]
    await leases.stop()


async def test_the_timer_sends_in_progress_for_held_requests_only() -> None:
    nc = FakeNats()
    leases = Leases(lambda: nc, ack_wait_s=0.04)  # a tick every 10 ms
    try:
        leases.hold("ack.kept")
        leases.hold("ack.done")
        leases.release("ack.done")
        for _ in range(100):
            if nc.sent:
                break
            await asyncio.sleep(0.01)
    finally:
        await leases.stop()
    assert nc.sent and {(s.subject, s.data) for s in nc.sent} == {("ack.kept", IN_PROGRESS)}


async def test_the_timer_survives_a_failed_publish() -> None:
    nc = FakeNats(fail_publishes=1)
    leases = Leases(lambda: nc, ack_wait_s=0.04)
    leases.hold("ack.a")
    try:
        for _ in range(100):
            if nc.sent:
                break
            await asyncio.sleep(0.01)
    finally:
        await leases.stop()
    assert nc.sent[0].subject == "ack.a"


async def test_ack_ends_every_hold() -> None:
    nc = FakeNats()
    leases = Leases(lambda: nc, ack_wait_s=3_000)
    leases.hold("ack.a")
    leases.hold("ack.a")
    await leases.ack("ack.a")
    assert "ack.a" not in leases and nc.published == [("ack.a", ACK)]
    await leases.ack(None)
    await leases.stop()


async def test_a_process_says_whether_it_holds_another_run() -> None:
    leases = Leases(never_called, ack_wait_s=3_000)
    first = "$JS.ACK.GW_REQ.redaction.1.42.42.1700000000000000000.0"
    again = "$JS.ACK.GW_REQ.redaction.1.42.97.1700000000000000000.0"  # handed out again by a restarted broker
    leases.hold(first, "r1")
    assert leases.holds_other("r1", again)  # we still work on it: the new delivery steps aside
    assert not leases.holds_other("r1", first)  # its own delivery is not another run
    assert not leases.holds_other("r2", again)
    leases.release(first)
    assert not leases.holds_other("r1", again)
    await leases.stop()


def test_delivery_count_from_the_ack_subject() -> None:
    assert delivery_of("$JS.ACK.GW_REQ.redaction.3.1042.990.1700000000000000000.12") == 3
    assert delivery_of("$JS.ACK.domain.hash.GW_REQ.redaction.2.5.5.17.0.token") == 2
    assert delivery_of("nonsense") == 1
