"""Migration 0003 on top of a store that already ran 0001 and 0002 (an upgrade, not a fresh install).

Its own chDB directory: runs in a module with no other store open (one engine path per process).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.clickhouse import open_store
from infra.clickhouse.migrate import MIGRATIONS_DIR, apply_migrations
from schemas.ids import uuid7

from ..factories import completed, control_event

pytestmark = pytest.mark.server


def test_0003_upgrades_an_existing_0001_0002_store(tmp_path: Path) -> None:
    old = tmp_path / "old_migrations"
    old.mkdir()
    for name in ("0001_init.sql", "0002_cached_tokens.sql"):
        shutil.copy(MIGRATIONS_DIR / name, old / name)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert [m.version for m in apply_migrations(store._client, old)] == [1, 2]
        rid = uuid7()
        store._client.command(  # a row as the sink wrote it before 0003
            "INSERT INTO requests (request_id, event_id, ts, finished_at, tenant, user, status_code, "
            f"cached_tokens, schema_version) VALUES ('{rid}', '{uuid7()}', now64(3), now64(3), 't_old', 'u1', "
            "200, 3, 1)"
        )

        assert [m.name for m in store.migrate()][:2] == ["routing", "guardrails"]  # and every later one
        assert store.migrate() == []
        old_row = store.query_readonly(
            "SELECT user, cached_tokens, tags, config_version, route_path, experiment, variant "
            "FROM requests WHERE request_id = {id:UUID}", {"id": rid}).rows
        assert old_row == [["u1", 3, {}, "", "", "", ""]]

        rc = completed(tenant="t_new", tags={"team": "ml"}, experiment="e1", variant="a", config_version="v2",
                       route_path="0")
        result = store.write([rc, control_event()])
        assert (result.requests, result.gateway_events) == (1, 1)
        new_row = store.query_readonly(
            "SELECT tags['team'], experiment, variant, config_version, route_path FROM requests "
            "WHERE request_id = {id:UUID}", {"id": rc.request_id}).rows
        assert new_row == [["ml", "e1", "a", "v2", "0"]]
        # the rollup's materialized view still feeds on the altered table
        rollup = store.query_readonly(
            "SELECT countMerge(requests) FROM requests_per_minute WHERE tenant IN ('t_old', 't_new')").rows
        assert rollup == [[2]]
        assert store.query_readonly("SELECT count() FROM gateway_events").rows == [[1]]
