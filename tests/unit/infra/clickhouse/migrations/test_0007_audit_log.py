"""Migration 0007 on top of a store that already ran every earlier migration (an upgrade): an empty
``audit_log`` ordered by seq, whose chain starts at genesis; applying it again changes nothing.

Its own chDB directory: runs in a module with no other store open (one engine path per process).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.clickhouse import open_store
from infra.clickhouse.migrate import MIGRATIONS_DIR, apply_migrations, discover
from schemas.audit import GENESIS

pytestmark = pytest.mark.server


def test_0007_upgrades_an_existing_store(tmp_path: Path) -> None:
    old = tmp_path / "old_migrations"
    old.mkdir()
    earlier = [m for m in discover() if m.version < 7]
    for migration in earlier:
        shutil.copy(MIGRATIONS_DIR / migration.path.name, old / migration.path.name)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        apply_migrations(store._client, old)
        assert [m.name for m in store.migrate()][:1] == ["audit_log"]
        assert store.migrate() == []
        tail = store.audit_tail()
        assert (tail.seq, tail.hash) == (0, GENESIS)
        sorting = store.query_readonly("SELECT sorting_key, engine FROM system.tables WHERE name = 'audit_log'").rows
        assert sorting == [["seq", "MergeTree"]]
