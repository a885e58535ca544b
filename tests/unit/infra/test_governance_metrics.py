"""Budgets and rate limits per scope, read from the shared ledger and the key directory at scrape time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.governance_metrics import governance_families, limits_of
from schemas import subjects
from schemas.governance import Hold, KeyDirectory, LedgerState, Limits, ModelLimits, VirtualKey, period_id
from schemas.wire import encode
from tests.support.jetstream import JetStreamServer, jetstream_server

pytestmark = pytest.mark.server

LIMITS = Limits(rpm=100, tpm=5000, budget_usd="10", budget_period="month", per_model={"gpt-4o": ModelLimits(rpm=7)})
DIRECTORY = KeyDirectory(config_keys=[VirtualKey(id="k1", tenant="acme", limits=LIMITS)])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


def test_limits_of_each_kind_of_scope() -> None:
    assert limits_of(DIRECTORY, "key.k1") == (100, 5000, LIMITS)
    assert limits_of(DIRECTORY, "key.k1.m.gpt-4o") == (7, None, None)
    assert limits_of(DIRECTORY, "key.gone") == (None, None, None)
    assert limits_of(DIRECTORY, "team.none") == (None, None, None)


async def test_spend_holds_and_windows_against_the_limits(server: JetStreamServer) -> None:
    now = time.time()
    kv = await server.js.key_value(subjects.BUCKET_LEDGER)
    await kv.put("key.k1", encode(LedgerState(period=period_id("month", now), spent_nusd=2_500_000_000,
                                              holds={"r1": Hold(nusd=500_000_000, tokens=10, expires_at=now + 60,
                                                                at=now)},
                                              requests={int(now): 3}, tokens={int(now): 40})))
    await kv.put("key.k1.m.gpt-4o", encode(LedgerState(requests={int(now): 2})))
    got = {f.name: {s.labels["scope"] if s.labels else "": s.value for s in f.samples}
           for f in await governance_families(server.js, DIRECTORY, now)}
    assert got["gateway_budget_spent_usd"] == {"key.k1": 2.5}
    assert got["gateway_budget_limit_usd"] == {"key.k1": 10.0}
    assert got["gateway_budget_held_usd"]["key.k1"] == 0.5
    assert got["gateway_rate_limit_requests"]["key.k1"] >= 3  # the hold's request counts in its second too
    assert got["gateway_rate_limit_requests_limit"] == {"key.k1": 100, "key.k1.m.gpt-4o": 7}
    assert got["gateway_rate_limit_tokens_limit"] == {"key.k1": 5000}
    assert got["gateway_limit_scopes_skipped"] == {"": 0}


async def test_past_the_bound_scopes_are_counted_not_read(server: JetStreamServer) -> None:
    kv = await server.js.key_value(subjects.BUCKET_LEDGER)
    for i in range(3):
        await kv.put(f"tenant.t{i}", encode(LedgerState()))
    got = {f.name: f.samples for f in await governance_families(server.js, DIRECTORY, time.time(), max_scopes=1)}
    assert got["gateway_limit_scopes_skipped"][0].value == 2
    assert len(got["gateway_rate_limit_requests"]) == 1
