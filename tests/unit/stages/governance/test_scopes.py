"""Which scopes a request counts against, from the config's keys and governance section."""

from __future__ import annotations

from infra.key_directory import config_directory
from schemas.config import GatewayConfig
from stages.governance.scopes import scope_of, scopes_for

CONFIG = GatewayConfig.model_validate({
    "keys": [
        {"id": "k1", "key_sha256": "a" * 64, "tenant": "acme", "team": "search",
         "limits": {"budget_usd": "1.5", "budget_period": "day", "rpm": 10, "per_model": {"m": {"tpm": 500}}},
         "access": {"allow_unpriced": True, "max_tokens": 100}},
        {"id": "free", "key_sha256": "b" * 64, "tenant": "other"},
    ],
    "governance": {"tenants": {"acme": {"limits": {"tpm": 1000}, "access": {"require_tags": {"region": "eu"}}}},
                   "teams": {"search": {"limits": {"budget_usd": "5", "alert_at": 0.8},
                                        "access": {"max_tokens": 50}}}},
})


def test_scopes_of_key_team_tenant_and_model() -> None:
    directory = config_directory(CONFIG)
    key = directory.by_id("k1")
    assert key is not None
    scopes = scopes_for(directory, key, "m")
    assert [s.key for s in scopes] == ["key.k1", "key.k1.m.m", "team.search", "tenant.acme"]
    k, km, team, tenant = scopes
    assert (k.budget_nusd, k.period, k.rpm, k.allow_unpriced) == (1_500_000_000, "day", 10, True)
    assert (km.tpm, km.period, km.budget_nusd, km.label) == (500, None, None, "key.k1.m.m")
    assert (team.budget_nusd, team.alert_at, team.period, team.allow_unpriced) == (5_000_000_000, 0.8, "month", False)
    assert tenant.tpm == 1000 and tenant.budget_nusd is None
    assert [s.key for s in scopes_for(directory, key, "other")] == ["key.k1", "team.search", "tenant.acme"]
    free = directory.by_id("free")
    assert free is not None and scopes_for(directory, free, "m") == []
    assert scope_of(directory, "key.k1.m.m") == km
    assert scope_of(directory, "team.search") == team
    assert scope_of(directory, "key.gone") is None