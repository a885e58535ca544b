"""Migration 0004 on top of a store that already ran 0001–0003 (an upgrade, not a fresh install).

Its own chDB directory: runs in a module with no other store open (one engine path per process).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.clickhouse import open_store
from infra.clickhouse.migrate import MIGRATIONS_DIR, apply_migrations

from ..factories import completed, verdict

pytestmark = pytest.mark.server


def test_0004_upgrades_an_existing_0001_0003_store(tmp_path: Path) -> None:
    old = tmp_path / "old_migrations"
    old.mkdir()
    for name in ("0001_init.sql", "0002_cached_tokens.sql", "0003_routing.sql"):
        shutil.copy(MIGRATIONS_DIR / name, old / name)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert [m.version for m in apply_migrations(store._client, old)] == [1, 2, 3]
        before = completed(tenant="t_old")
        store._client.command(  # a row as the sink wrote it before 0004
            "INSERT INTO requests (request_id, event_id, ts, finished_at, tenant, status_code, schema_version) "
            f"VALUES ('{before.request_id}', '{before.event_id}', now64(3), now64(3), 't_old', 200, 1)"
        )

        assert [m.name for m in store.migrate()][:1] == ["guardrails"]  # and every later one
        assert store.migrate() == []
        old_row = store.query_readonly(
            "SELECT guardrail_profile, guardrail_outcomes FROM requests WHERE request_id = {id:UUID}",
            {"id": before.request_id}).rows
        assert old_row == [["", {}]]

        rc = completed(tenant="t_new", guardrail_profile="strict",
                       verdicts=[verdict("injection", outcome="block", findings={"ignore_previous": 1})])
        assert store.write([rc]).verdicts == 1
        assert store.query_readonly(
            "SELECT guardrail_outcomes['injection'] FROM requests WHERE request_id = {id:UUID}",
            {"id": rc.request_id}).rows == [["block"]]
        # the rollup's materialized view still feeds on the altered table
        rollup = store.query_readonly(
            "SELECT countMerge(requests) FROM requests_per_minute WHERE tenant IN ('t_old', 't_new')").rows
        assert rollup == [[2]]
