"""Settlement survives kill -9 of the process consuming the records: the durable ``ledger`` consumer
hands the unacked records to the next process, and scopes settled already are not settled twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from infra.ledger import Ledger
from schemas import subjects
from schemas.events import RequestCompleted
from schemas.ids import uuid7
from schemas.wire import encode
from stages.governance.admission import Ask, Decision, admit
from stages.governance.draft import Draft
from stages.governance.scopes import Scope
from tests.support.jetstream import jetstream_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCOPES = [Scope(key="key.kx", label="key.kx", level="key.kx", budget_nusd=10**12, period="month"),
          Scope(key="tenant.tx", label="tenant.tx", level="tenant.tx", rpm=10_000, period="month")]
N = 60


def _reserve(scope: Scope, ask: Ask, draft: Draft) -> Decision:
    return admit(draft, scope, ask)


def stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def child(url: str, delay_s: float) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.settler_child", url, str(delay_s)],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_settlement_survives_kill_9_of_its_consumer(tmp_path: Path) -> None:
    async def run() -> None:
        async with jetstream_server(tmp_path) as server:
            ledger = await Ledger.open(server.js, Draft)
            ids = [uuid7() for _ in range(N)]
            for rid in ids:
                ask = Ask(request_id=rid, nusd=5_000, tokens=100, expires_at=time.time() + 600)
                for scope in SCOPES:
                    assert (await ledger.apply(scope.key, partial(_reserve, scope, ask))).admitted
            for i, rid in enumerate(ids):  # every other request failed: its hold is released, nothing spent
                record = RequestCompleted(
                    event_id=uuid7(), request_id=rid, ts=time.time(), finished_at=time.time(), stage="output_filter",
                    status_code=200 if i % 2 == 0 else 502, cost_usd="0.000001" if i % 2 == 0 else None,
                    prompt_tokens=10, completion_tokens=5, scopes=[s.key for s in SCOPES], hold_nusd=5_000,
                    hold_tokens=100)
                await server.js.publish(subjects.governed_event_subject("output_filter"), encode(record),
                                        headers={"Nats-Msg-Id": rid})
            first = child(server.url, delay_s=0.05)
            try:
                for _ in range(200):  # kill it once it settled some, not all
                    if 0 < len((await ledger.read("key.kx")).holds) < N:
                        break
                    await asyncio.sleep(0.02)
            finally:
                stop(first)  # kill -9 in the middle of its work
            partway = len((await ledger.read("key.kx")).holds)
            assert 0 < partway < N
            second = child(server.url, delay_s=0.0)
            try:
                for _ in range(300):  # unacked records come back after ack_wait (10 s)
                    states = [await ledger.read(s.key) for s in SCOPES]
                    if not any(s.holds for s in states):
                        break
                    await asyncio.sleep(0.1)
            finally:
                stop(second)
            key_state, tenant_state = [await ledger.read(s.key) for s in SCOPES]
            assert key_state.holds == {} and tenant_state.holds == {}
            assert key_state.spent_nusd == (N // 2) * 1_000  # each success once, failures nothing
            assert tenant_state.spent_nusd == (N // 2) * 1_000
            assert sum(tenant_state.tokens.values()) == (N // 2 + N // 2) * 15  # corrected to actual tokens
            assert sum(tenant_state.requests.values()) == N

    asyncio.run(run())
