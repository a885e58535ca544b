"""Migration 0005 on top of a store that already ran 0001–0004: the governance columns of ``requests``.

Its own chDB directory: runs in a module with no other store open (one engine path per process).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.clickhouse import open_store
from infra.clickhouse.migrate import MIGRATIONS_DIR, apply_migrations

from ..factories import completed

pytestmark = pytest.mark.server


def test_0005_upgrades_an_existing_store_and_records_decisions(tmp_path: Path) -> None:
    old = tmp_path / "old_migrations"
    old.mkdir()
    for name in ("0001_init.sql", "0002_cached_tokens.sql", "0003_routing.sql", "0004_guardrails.sql"):
        shutil.copy(MIGRATIONS_DIR / name, old / name)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert [m.version for m in apply_migrations(store._client, old)] == [1, 2, 3, 4]
        before = completed(tenant="t_old")
        store._client.command(
            "INSERT INTO requests (request_id, event_id, ts, finished_at, tenant, status_code, schema_version) "
            f"VALUES ('{before.request_id}', '{before.event_id}', now64(3), now64(3), 't_old', 200, 1)")
        assert [m.name for m in store.migrate()][:1] == ["governance"]
        assert store.query_readonly(
            "SELECT team, reserved_usd, limit_scopes, limit_refused, governance_notes FROM requests "
            "WHERE request_id = {id:UUID}", {"id": before.request_id}).rows == [["", "0.000000000", [], "", []]]

        admitted = completed(tenant="t", team="search", scopes=["key.k1", "team.search"], hold_nusd=1_234_567,
                             governance_notes=["overshoot"])
        refused = completed(tenant="t", status_code=429, limit_refused="team.search rpm")
        assert store.write([admitted, refused]).requests == 2
        rows = store.query_readonly(
            "SELECT team, reserved_usd, limit_scopes, limit_refused, governance_notes FROM requests "
            "WHERE tenant = 't' ORDER BY status_code").rows
        assert rows == [["search", "0.001234567", ["key.k1", "team.search"], "", ["overshoot"]],
                        ["", "0.000000000", [], "team.search rpm", []]]
