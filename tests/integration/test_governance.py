"""Budgets and rate limits through the whole gateway: two policy replicas (the default layout's two
hosts) sharing one ledger, the 429 and 403 shapes, the x-ratelimit-* headers (streams included), and
every decision on the request's row. The short variant of ``bench/governance_drill.py``."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.governance_drill import MODEL, accepted_spend, budget_phase, drill_config, ledger_entry, max_cost_nusd
from infra.nats_server import free_port
from infra.operator.launcher import RunningGateway, start_gateway
from schemas.governance import usd_to_nusd

pytestmark = pytest.mark.integration

KEYS = {"sk-gov-window": {"rpm": 20}, "sk-gov-tiny": {"budget_usd": "0.00000001", "budget_period": "month"},
        "sk-gov-stream": {"rpm": 1000, "tpm": 1_000_000}}
BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "Hello there."}]}
BUDGET_USD = "0.0006"


def _key(secret: str, limits: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": secret.removeprefix("sk-"), "key_sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "tenant": "gov", "limits": limits, **extra}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("governance")
    mock_port = free_port()
    config = drill_config(mock_port, BUDGET_USD, rpm=1000)
    config["keys"] += [_key(s, limits) for s, limits in KEYS.items()]
    config["keys"].append(_key("sk-gov-unpriced", {"budget_usd": "1"}))
    config["keys"].append(_key("sk-gov-unpriced-ok", {"budget_usd": "1"}, access={"allow_unpriced": True}))
    running = start_gateway(root, config)
    try:
        yield running
    finally:
        running.stop()


def post(gw: RunningGateway, secret: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/v1/chat/completions", json=body or BODY,
                      headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_a_window_limit_is_shared_by_the_replicas(gw: RunningGateway) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30,
                                     headers={"Authorization": "Bearer sk-gov-window"}) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=BODY) for _ in range(40)))

    answers = asyncio.run(burst())
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 20, 429: 20}
    refused = next(r for r in answers if r.status_code == 429)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "key.gov-window" in error["message"] and "20 requests per minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "20"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    for ok in (r for r in answers if r.status_code == 200):
        assert ok.headers["x-ratelimit-limit-requests"] == "20"
        assert 0 <= int(ok.headers["x-ratelimit-remaining-requests"]) < 20
        assert "x-ratelimit-limit-tokens" not in ok.headers
    rows = gw.wait_rows("SELECT status_code, limit_refused, limit_scopes FROM requests "
                        "WHERE api_key_id = 'gov-window'", lambda r: len(r) == 40)
    assert Counter((r["status_code"], r["limit_refused"]) for r in rows) == {
        (200, ""): 20, (429, "key.gov-window rpm"): 20}
    assert all(r["limit_scopes"] == ["key.gov-window"] for r in rows if r["status_code"] == 200)


def test_over_budget_is_insufficient_quota_naming_the_level_and_reset(gw: RunningGateway) -> None:
    answer = post(gw, "sk-gov-tiny")
    assert answer.status_code == 429
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert "key.gov-tiny" in error["message"] and "resets at" in error["message"] and "T00:00:00Z" in error["message"]
    assert "retry-after" not in answer.headers
    rows = gw.wait_rows("SELECT limit_refused, error_code FROM requests WHERE api_key_id = 'gov-tiny'", bool)
    assert rows[0] == {"limit_refused": "key.gov-tiny budget", "error_code": "budget_exceeded"}


def test_an_unpriced_model_is_refused_unless_allowed_and_recorded_either_way(gw: RunningGateway) -> None:
    body = {**BODY, "model": "house-model"}
    refused = post(gw, "sk-gov-unpriced", body)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "model_unpriced" and "allow_unpriced" in error["message"]
    assert post(gw, "sk-gov-unpriced-ok", body).status_code == 200
    rows = gw.wait_rows("SELECT api_key_id, limit_refused, governance_notes FROM requests "
                        "WHERE api_key_id IN ('gov-unpriced', 'gov-unpriced-ok') ORDER BY api_key_id",
                        lambda r: len(r) == 2)
    assert rows == [{"api_key_id": "gov-unpriced", "limit_refused": "key.gov-unpriced unpriced",
                     "governance_notes": []},
                    {"api_key_id": "gov-unpriced-ok", "limit_refused": "", "governance_notes": ["unpriced_allowed"]}]


def test_a_stream_carries_the_headers_before_its_first_chunk(gw: RunningGateway) -> None:
    with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions", json={**BODY, "stream": True},
                      headers={"Authorization": "Bearer sk-gov-stream"}, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit-requests"] == "1000"
        assert answer.headers["x-ratelimit-limit-tokens"] == "1000000"
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) < 1_000_000
        assert "[DONE]" in answer.read().decode()


def test_no_headers_without_limits(gw: RunningGateway) -> None:
    answer = post(gw, "sk-gateway-demo")
    assert answer.status_code == 200 and not any(h.startswith("x-ratelimit") for h in answer.headers)


def test_concurrent_spend_stays_within_the_budget(gw: RunningGateway) -> None:
    """40 concurrent clients spend a small budget down: the accepted spend, as recorded and as the
    ledger has it, is within the budget plus one request's maximum cost, and every hold is settled."""
    outcomes = asyncio.run(budget_phase(gw, concurrency=40, duration_s=6.0))
    assert outcomes["ok"] > 0 and outcomes["429 budget_exceeded"] > 0, outcomes
    ok, spend = accepted_spend(gw, "drill-budget")
    assert ok == outcomes["ok"]
    bound = usd_to_nusd(BUDGET_USD) + max_cost_nusd(drill_config(gw.mock_port, BUDGET_USD, 1))
    assert usd_to_nusd(spend) <= bound

    async def settled() -> None:
        for _ in range(100):
            entry = await ledger_entry(gw, "key.drill-budget")
            if not entry.holds:
                assert entry.spent_nusd == usd_to_nusd(spend) and entry.spent_nusd <= bound
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"holds left unsettled: {len(entry.holds)}")

    asyncio.run(settled())
    assert spend > Decimal(0)
