"""The governance admin service against a real JetStream: keys and their lifecycle, only hashes stored,
compare-and-set on revisions, team/tenant limits, usage read from the ledger (absent = zero)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.governance_admin import ConfigFacts, GovernanceAdmin, key_view, usage
from schemas import subjects
from schemas.config import hash_api_key
from schemas.errors import Conflict, InvalidRequest, NotFound
from schemas.governance import Hold, KeyCache, LedgerState, Limits, VirtualKey, ledger_key, usd_to_nusd
from schemas.governance_admin import BudgetSet, KeyCreate, KeyRotate, KeyUpdate
from schemas.wire import decode, encode
from tests.support.jetstream import JetStreamServer, audit_published, jetstream_server

pytestmark = pytest.mark.server

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats") as srv:
        yield srv


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def admin(server: JetStreamServer, clock: Clock) -> GovernanceAdmin:
    return GovernanceAdmin(server.js, ConfigFacts(profiles={"default", "strict"}, config_key_ids=["demo"]), clock,
                           identity="admin")


async def stored(server: JetStreamServer, key_id: str) -> bytes:
    entry = await (await server.js.key_value(subjects.BUCKET_KEYS)).get(f"key.{key_id}")
    assert entry.value is not None
    return entry.value


async def test_create_stores_only_the_hash_and_returns_the_secret_once(admin: GovernanceAdmin,
                                                                       server: JetStreamServer) -> None:
    issued = await admin.create_key(KeyCreate(tenant="acme", team="ml", budget_usd="5", budget_period="day",
                                              rpm=60, expires="30d", tags={"env": "prod"},
                                              require_tags={"region": "eu"}, max_tokens=512))
    assert issued.secret.startswith("sk-gw-") and len(issued.secret) == 6 + 43
    assert issued.key.id.startswith("key_")
    raw = await stored(server, issued.key.id)
    assert issued.secret.encode() not in raw and hash_api_key(issued.secret).encode() in raw
    key = decode(raw, VirtualKey)
    assert (key.tenant, key.team, key.limits.rpm, key.limits.budget_usd, key.limits.budget_period) == \
        ("acme", "ml", 60, "5", "day")
    assert key.expires_at == NOW + 30 * 86400 and key.access.require_tags == {"region": "eu"}
    view = key_view(key, NOW)
    assert "sha256" not in str(view) and issued.secret not in str(view) and view["status"] == "active"


async def test_ids_are_unique_against_kv_and_config_keys(admin: GovernanceAdmin) -> None:
    await admin.create_key(KeyCreate(id="k1", tenant="acme"))
    for taken in ("k1", "demo"):
        with pytest.raises(Conflict) as raised:
            await admin.create_key(KeyCreate(id=taken, tenant="acme"))
        assert raised.value.status_code == 409 and raised.value.param == "id"


async def test_an_unknown_guardrail_profile_is_refused(admin: GovernanceAdmin) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await admin.create_key(KeyCreate(tenant="acme", guardrail_profile="nope"))
    assert raised.value.param == "guardrail_profile" and "strict" in raised.value.message
    await admin.create_key(KeyCreate(tenant="acme", guardrail_profile="strict"))


async def test_a_keys_cache_settings_are_kept_changed_and_cleared(admin: GovernanceAdmin,
                                                                  server: JetStreamServer) -> None:
    await admin.create_key(KeyCreate.model_validate({"id": "c1", "tenant": "acme", "cache": {"mode": "exact"}}))
    assert decode(await stored(server, "c1"), VirtualKey).cache == KeyCache(mode="exact")
    await admin.update_key("c1", KeyUpdate.model_validate({"cache": {"mode": "exact", "ttl_s": 60}}))
    assert decode(await stored(server, "c1"), VirtualKey).cache == KeyCache(mode="exact", ttl_s=60)
    await admin.update_key("c1", KeyUpdate.model_validate({"name": "renamed"}))  # untouched when not given
    assert decode(await stored(server, "c1"), VirtualKey).cache == KeyCache(mode="exact", ttl_s=60)
    await admin.update_key("c1", KeyUpdate.model_validate({"cache": None}))
    assert decode(await stored(server, "c1"), VirtualKey).cache is None


async def test_list_filters_and_show_reports_usage(admin: GovernanceAdmin, server: JetStreamServer) -> None:
    await admin.create_key(KeyCreate(id="a", tenant="acme", team="ml", budget_usd="10", budget_period="month"))
    await admin.create_key(KeyCreate(id="b", tenant="acme", team="web"))
    await admin.create_key(KeyCreate(id="c", tenant="globex"))
    assert [k.id for k in await admin.list_keys()] == ["a", "b", "c"]
    assert [k.id for k in await admin.list_keys(tenant="acme")] == ["a", "b"]
    assert [k.id for k in await admin.list_keys(tenant="acme", team="web")] == ["b"]
    shown = await admin.show_key("a")  # no ledger entry yet: zero
    assert shown["usage"]["spent_usd"] == "0.0" and shown["usage"]["remaining_usd"] == "10.0"
    ledger = await server.js.key_value(subjects.BUCKET_LEDGER)  # declared with the others
    state = LedgerState(period="2027-01", spent_nusd=usd_to_nusd("2.5"),
                        holds={"r1": Hold(nusd=usd_to_nusd("0.5"), tokens=100, expires_at=NOW + 30)},
                        requests={int(NOW) - 5: 3, int(NOW) - 120: 9}, tokens={int(NOW) - 5: 300})
    await ledger.put(ledger_key("key", "a"), encode(state))
    report = (await admin.show_key("a"))["usage"]
    assert (report["spent_usd"], report["held_usd"], report["remaining_usd"]) == ("2.5", "0.5", "7.0")
    assert (report["requests_last_minute"], report["tokens_last_minute"], report["period"]) == (3, 300, "2027-01")
    with pytest.raises(NotFound) as raised:
        await admin.show_key("zzz")
    assert raised.value.status_code == 404 and "gateway keys list" in raised.value.message


def test_usage_of_an_earlier_period_is_zero() -> None:
    state = LedgerState(period="2026-12", spent_nusd=5)
    assert usage(Limits(budget_usd="1"), state, NOW)["spent_usd"] == "0.0"
    assert usage(Limits(), None, NOW)["remaining_usd"] is None


async def test_update_changes_given_fields_and_checks_revisions(admin: GovernanceAdmin, clock: Clock) -> None:
    issued = await admin.create_key(KeyCreate(id="k", tenant="acme", rpm=10, tpm=1000, expires="1d"))
    clock.now += 5
    key, revision = await admin.update_key("k", KeyUpdate.model_validate(
        {"rpm": None, "name": "renamed", "models": ["gpt-4o-mini"], "expires": "never"}))
    assert (key.limits.rpm, key.limits.tpm, key.name, key.models, key.expires_at) == \
        (None, 1000, "renamed", ["gpt-4o-mini"], None)
    assert key.updated_at == NOW + 5 and key.secrets == issued.key.secrets and revision > issued.revision
    with pytest.raises(Conflict) as raised:
        await admin.update_key("k", KeyUpdate(name="x", revision=issued.revision))
    assert raised.value.code == "revision_mismatch"
    key, _ = await admin.update_key("k", KeyUpdate(name="y", revision=revision))
    assert key.name == "y"


async def test_revoke_is_idempotent(admin: GovernanceAdmin, clock: Clock) -> None:
    await admin.create_key(KeyCreate(id="k", tenant="acme"))
    first, _ = await admin.revoke_key("k")
    clock.now += 60
    again, _ = await admin.revoke_key("k")
    assert first.revoked_at == again.revoked_at == NOW
    with pytest.raises(Conflict):
        await admin.rotate_key("k", KeyRotate(grace="10m"))


async def test_rotate_with_and_without_grace(admin: GovernanceAdmin, clock: Clock) -> None:
    issued = await admin.create_key(KeyCreate(id="k", tenant="acme"))
    clock.now += 100
    rotated = await admin.rotate_key("k", KeyRotate(grace="10m"))
    hashes = {s.sha256: s.valid_until for s in rotated.key.secrets}
    assert hashes == {hash_api_key(issued.secret): NOW + 100 + 600, hash_api_key(rotated.secret): None}
    clock.now += 1
    again = await admin.rotate_key("k", KeyRotate())
    assert [s.sha256 for s in again.key.secrets] == [hash_api_key(again.secret)]


async def test_budgets_set_merges_and_show_reads_the_level_ledger(admin: GovernanceAdmin) -> None:
    shown = await admin.show_level("tenant", "acme")
    assert shown["configured"] is False and shown["usage"]["spent_usd"] == "0.0"
    policy, _ = await admin.set_level("tenant", "acme", BudgetSet(usd="100", period="day", rpm=600))
    assert (policy.limits.budget_usd, policy.limits.budget_period, policy.limits.rpm) == ("100", "day", 600)
    policy, _ = await admin.set_level("tenant", "acme", BudgetSet.model_validate(
        {"tpm": 10_000, "require_tags": {"region": "eu"}, "rpm": None}))
    assert (policy.limits.budget_usd, policy.limits.rpm, policy.limits.tpm) == ("100", None, 10_000)
    assert policy.access.require_tags == {"region": "eu"}
    shown = await admin.show_level("tenant", "acme")
    assert shown["configured"] is True and shown["usage"]["remaining_usd"] == "100.0"
    assert (await admin.show_level("team", "acme"))["configured"] is False


async def test_every_change_is_audited_under_its_actor_without_secrets(server: JetStreamServer, clock: Clock) -> None:
    admin = GovernanceAdmin(server.js, ConfigFacts(), clock, identity="op-ana", reported_by="ana@box")
    issued = await admin.create_key(KeyCreate(id="k", tenant="acme", rpm=10))
    clock.now += 1
    await admin.update_key("k", KeyUpdate(team="ml"))
    await admin.revoke_key("k")
    await admin.revoke_key("k")  # no change: no entry
    await admin.create_key(KeyCreate(id="k2", tenant="acme"))
    rotated = await admin.rotate_key("k2", KeyRotate(grace="10m"))
    await admin.set_level("team", "ml", BudgetSet(usd="5"))
    published = await audit_published(server.js)
    entries = [e for _, e in published]
    assert [(e.kind, e.action, e.subject) for e in entries] == [
        ("key", "created", "key.k"), ("key", "updated", "key.k"), ("key", "revoked", "key.k"),
        ("key", "created", "key.k2"), ("key", "rotated", "key.k2"), ("budget", "set", "team.ml")]
    # published on the identity's own subject, claiming it; the OS user only as a hint in the detail
    assert {subject for subject, _ in published} == {"gw.audit.by.op-ana"}
    assert {e.actor for e in entries} == {"nats:op-ana"}
    assert {e.detail["reported_by"] for e in entries} == {"ana@box"}
    assert entries[1].detail["changes"] == {"team": {"before": "", "after": "ml"}}
    assert entries[4].detail["grace_s"] == 600.0
    text = str([e.detail for e in entries])
    for secret in (issued.secret, rotated.secret):
        assert secret not in text and hash_api_key(secret) not in text
    assert "sha256" not in text
