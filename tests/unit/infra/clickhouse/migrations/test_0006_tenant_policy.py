"""Migration 0006 on top of a store that already ran every earlier migration (an upgrade, not a fresh
install): ``requests.policy_skips``, read as ``{}`` on older rows, written from ``skipped_targets``.

Its own chDB directory: runs in a module with no other store open (one engine path per process).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.clickhouse import open_store
from infra.clickhouse.migrate import MIGRATIONS_DIR, apply_migrations, discover

from ..factories import completed

pytestmark = pytest.mark.server


def test_0006_upgrades_an_existing_store(tmp_path: Path) -> None:
    old = tmp_path / "old_migrations"
    old.mkdir()
    earlier = [m for m in discover() if m.version < 6]
    for migration in earlier:
        shutil.copy(MIGRATIONS_DIR / migration.path.name, old / migration.path.name)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert [m.version for m in apply_migrations(store._client, old)] == [m.version for m in earlier]
        before = completed(tenant="t_old")
        store._client.command(  # a row as the sink wrote it before 0006
            "INSERT INTO requests (request_id, event_id, ts, finished_at, tenant, status_code, schema_version) "
            f"VALUES ('{before.request_id}', '{before.event_id}', now64(3), now64(3), 't_old', 200, 1)"
        )

        assert [m.name for m in store.migrate()][:1] == ["tenant_policy"]
        assert store.migrate() == []
        assert store.query_readonly("SELECT policy_skips FROM requests WHERE request_id = {id:UUID}",
                                    {"id": before.request_id}).rows == [[{}]]

        skips = {"mock-us/gpt-4o": "region=us, needs eu", "openai/gpt-4o": "provider 'openai' not allowed"}
        rc = completed(tenant="t_new", skipped_targets=skips)
        assert store.write([rc]).requests == 1
        assert store.query_readonly(
            "SELECT policy_skips, policy_skips['mock-us/gpt-4o'] FROM requests WHERE request_id = {id:UUID}",
            {"id": rc.request_id}).rows == [[skips, "region=us, needs eu"]]
        # the rollup's materialized view still feeds on the altered table
        rollup = store.query_readonly(
            "SELECT countMerge(requests) FROM requests_per_minute WHERE tenant IN ('t_old', 't_new')").rows
        assert rollup == [[2]]
