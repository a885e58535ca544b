"""The shared ledger against a real nats-server: compare-and-set, coalescing, the kept state, and two
ledgers (two connections, as two processes) racing on one budget never admitting past it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import nats
import pytest

from infra.ledger import Ledger, kv_key
from stages.governance.admission import Ask, Decision, admit
from stages.governance.draft import Draft
from stages.governance.scopes import Scope
from stages.governance.settlement import Settled, settle_on
from tests.support.jetstream import jetstream_server

pytestmark = pytest.mark.server

BUDGET = Scope(key="key.k1", label="key.k1", level="key.k1", budget_nusd=1000, period="month")


def hold(a: Ask) -> Callable[[Draft], Decision]:
    return partial(admit, scope=BUDGET, ask=a)


def pay(rid: str, cost: int) -> Callable[[Draft], Settled]:
    return partial(settle_on, request_id=rid, actual_nusd=cost, actual_tokens=0)


def ask(rid: str, nusd: int = 10) -> Ask:
    return Ask(request_id=rid, nusd=nusd, tokens=1, expires_at=time.time() + 600)


def test_kv_key() -> None:
    assert kv_key("key.k1.m.meta-llama/Llama:3") == "key.k1.m.meta-llama/Llama_3"


def test_two_ledgers_racing_on_one_budget_never_over_admit(tmp_path: Path) -> None:
    async def run() -> None:
        async with jetstream_server(tmp_path) as server:
            other = await nats.connect(server.url)
            try:
                a = await Ledger.open(server.js, Draft)
                b = await Ledger.open(other.jetstream(), Draft)
                decisions: list[Decision] = []
                for wave in range(30):  # waves of 5 + 5 concurrent reservations, the two racing
                    decisions += await asyncio.gather(*(
                        (a if i % 2 else b).apply(BUDGET.key, hold(ask(f"r{wave}.{i}")))
                        for i in range(10)))
                assert sum(d.admitted for d in decisions) == 100  # 1000 / 10, exactly
                stored = await a.read(BUDGET.key)
                assert len(stored.holds) == 100
                assert a.writes > 0 and b.writes > 0 and a.conflicts + b.conflicts > 0  # they did race
                assert a.writes + b.writes < 100  # coalesced: fewer writes than admissions
                settled = await asyncio.gather(*(a.apply(BUDGET.key, pay(rid, 7))
                                                 for rid in stored.holds))
                assert all(s.settled for s in settled)
                again = await b.apply(BUDGET.key, pay(next(iter(stored.holds)), 7))
                assert not again.settled  # idempotent
                final = await b.read(BUDGET.key)
                assert final.spent_nusd == 700 and final.holds == {}
            finally:
                await other.close()

    asyncio.run(run())


def test_batches_write_once_and_a_stale_refusal_is_decided_again(tmp_path: Path) -> None:
    async def run() -> None:
        async with jetstream_server(tmp_path) as server:
            a = await Ledger.open(server.js, Draft)
            decisions = await asyncio.gather(*(a.apply("key.k2", hold(ask(f"r{i}", 100)))
                                               for i in range(20)))
            assert sum(d.admitted for d in decisions) == 10
            assert a.writes <= 3  # one write per batch: the first alone, then the rest together
            # someone else releases everything: a refusal on the kept state is checked on a fresh read
            other = await nats.connect(server.url)
            try:
                b = await Ledger.open(other.jetstream(), Draft)
                for rid in (await b.read("key.k2")).holds:
                    await b.apply("key.k2", pay(rid, 0))
            finally:
                await other.close()
            assert (await a.apply("key.k2", hold(ask("late", 100)))).admitted

    asyncio.run(run())
