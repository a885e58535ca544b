"""The policy stage's governance step over an in-memory ledger: admission on the envelope, refusals as
429/403 with the rate-limit status, holds released when a later level refuses."""

from __future__ import annotations

import time
from typing import Any

import orjson

from infra.ledger import Ledger
from infra.live_config import LiveConfig
from schemas import subjects
from schemas.config import GatewayConfig, hash_api_key
from schemas.envelope import Envelope
from schemas.events import RequestCompleted
from schemas.governance import LedgerState
from schemas.wire import convert, decode
from stages.governance.draft import Draft
from tests.support.fake_kv import FakeKV
from tests.support.fake_nats import FakeNats, context
from workers.policy import PolicyWorker

KEY = "sk-test-governed"


def make_config(limits: dict[str, Any], tenant: dict[str, Any] | None = None, **key: Any) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {"p": {"type": "openai", "base_url": "http://p/v1"}},
        "models": {"m": {"targets": [{"provider": "p", "model": "gpt-4o-mini"}]},
                   "free": {"targets": [{"provider": "p", "model": "house"}]}},
        "keys": [{"id": "k1", "key_sha256": hash_api_key(KEY), "tenant": "acme", "limits": limits, **key}],
        "governance": {"tenants": {"acme": {"limits": tenant}}} if tenant else {},
    })


def envelope(rid: str = "0190f0c4-0000-7000-8000-000000000009", model: str = "m") -> Envelope:
    now = time.time()
    return convert({"request_id": rid, "received_at": now, "deadline": now + 60, "reply_to": "gw.reply.test",
                    "api_key_hash": hash_api_key(KEY), "model_requested": model,
                    "body": {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}},
                   Envelope)


def policy_of(config: GatewayConfig) -> tuple[PolicyWorker, FakeNats, Ledger[Draft]]:
    nc = FakeNats()
    policy = PolicyWorker(context(nc, LiveConfig.static(config, "v1")))
    ledger: Ledger[Draft] = Ledger(FakeKV(), Draft)  # type: ignore[arg-type]
    policy.ctx.use_ledger(ledger)
    return policy, nc, ledger


async def test_admitted_request_carries_its_admission() -> None:
    policy, nc, ledger = policy_of(make_config({"rpm": 5, "tpm": 1000, "budget_usd": "1"}))
    await policy.work(envelope(), time.perf_counter())
    [(subject, payload)] = nc.published
    assert subject == subjects.REQ_ROUTE
    admission = decode(payload, Envelope).admission
    assert admission is not None and admission.scopes == ["key.k1"] and admission.refused == ""
    assert admission.hold_nusd == 1 * 150 + 10 * 600  # "hi": 1 prompt token; 10 output tokens (gpt-4o-mini)
    assert admission.ratelimit is not None and admission.ratelimit.remaining_requests == 4
    assert admission.ratelimit.remaining_tokens == 1000 - 11
    state = await ledger.read("key.k1")
    assert set(state.holds) == {envelope().request_id}


async def test_rate_limited_request_ends_here_with_429_and_status() -> None:
    policy, nc, _ = policy_of(make_config({"rpm": 1}))
    await policy.work(envelope("0190f0c4-0000-7000-8000-000000000001"), time.perf_counter())
    await policy.work(envelope("0190f0c4-0000-7000-8000-000000000002"), time.perf_counter())
    assert [s for s, _ in nc.published].count(subjects.REQ_ROUTE) == 1  # only the first went on
    by_subject = dict(nc.published)
    reply = orjson.loads(by_subject["gw.reply.test"])
    assert (reply["status"], reply["error"]["code"], reply["error"]["type"]) == (
        429, "rate_limit_exceeded", "rate_limit_error")
    assert 1 <= reply["error"]["retry_after_s"] <= 60
    assert reply["ratelimit"]["limit_requests"] == 1 and reply["ratelimit"]["remaining_requests"] == 0
    record = decode(by_subject[subjects.event_subject("policy")], RequestCompleted)  # refused: nothing to settle
    assert record.limit_refused == "key.k1 rpm" and record.scopes == []


async def test_a_refusing_tenant_releases_the_keys_hold() -> None:
    policy, nc, ledger = policy_of(make_config({"rpm": 10, "budget_usd": "1"}, tenant={"budget_usd": "0.000001"}))
    await policy.work(envelope(), time.perf_counter())
    reply = orjson.loads(dict(nc.published)["gw.reply.test"])
    assert (reply["status"], reply["error"]["type"], reply["error"]["code"]) == (
        429, "insufficient_quota", "budget_exceeded")
    assert "tenant.acme" in reply["error"]["message"] and "resets at" in reply["error"]["message"]
    key_state = await ledger.read("key.k1")
    assert key_state.holds == {} and key_state.in_window(time.time()) == (0, 0)
    assert await ledger.read("tenant.acme") == LedgerState()


async def test_unpriced_model_under_a_budget() -> None:
    policy, nc, _ = policy_of(make_config({"budget_usd": "1"}))
    await policy.work(envelope(model="free"), time.perf_counter())
    reply = orjson.loads(dict(nc.published)["gw.reply.test"])
    assert (reply["status"], reply["error"]["code"]) == (403, "model_unpriced")
    allowed, nc2, _ = policy_of(make_config({"budget_usd": "1"}, access={"allow_unpriced": True}))
    await allowed.work(envelope(model="free"), time.perf_counter())
    [(subject, payload)] = nc2.published
    admission = decode(payload, Envelope).admission
    assert subject == subjects.REQ_ROUTE and admission is not None and admission.unpriced


async def test_keys_without_limits_take_no_reservation() -> None:
    policy, nc, ledger = policy_of(make_config({}))
    await policy.work(envelope(), time.perf_counter())
    [(_, payload)] = nc.published
    out = decode(payload, Envelope)
    assert out.admission is None and out.access is None  # no limits, and no access rules either
    assert ledger.writes == 0
