"""Migration 0009 (``requests_per_hour``) on an empty store and on a store that already holds requests:
the backfill aggregates the rows written before the view existed, the view takes every later insert,
and re-running the migration's backfill rebuilds the same rollup.

Its own chDB directories, one at a time: runs in a module with no other store open (one engine path
per process).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.gen_requests import generate
from infra.clickhouse import Store, open_store
from infra.clickhouse.migrate import MIGRATIONS_DIR, apply_migrations, discover

from ..factories import completed

pytestmark = pytest.mark.server

END = datetime(2020, 3, 2, tzinfo=UTC)

ROLLUP = """SELECT tenant, hour, provider, model_requested, countMerge(requests), sumMerge(errors),
    sumMerge(cost_usd), sumMerge(unpriced), sumMerge(prompt_tokens), sumMerge(cached_tokens), sumMerge(streamed)
FROM requests_per_hour
GROUP BY tenant, hour, provider, model_requested ORDER BY tenant, hour, provider, model_requested"""
RAW = """SELECT tenant, toStartOfHour(ts) AS hour, provider, model_requested, count(), countIf(status_code >= 400),
    sum(cost_usd), countIf(cost_usd IS NULL), sum(prompt_tokens), sum(cached_tokens), countIf(stream)
FROM requests FINAL
GROUP BY tenant, hour, provider, model_requested ORDER BY tenant, hour, provider, model_requested"""


def rows(store: Store, sql: str) -> list[list[Any]]:
    return store.query_readonly(sql, max_rows=100_000).rows


def backfill_statements() -> list[str]:
    """0009's TRUNCATE and INSERT ... SELECT, as an operator would re-run them."""
    (migration,) = [m for m in discover() if m.version == 9]
    found = [s for s in migration.statements if "TRUNCATE TABLE" in s or s.startswith("INSERT INTO")]
    assert len(found) == 2
    return found


def test_0009_on_an_empty_store(tmp_path: Path) -> None:
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert [m.version for m in store.migrate()][-1] == 9
        assert rows(store, "SELECT count() FROM requests_per_hour") == [[0]]
        ts = datetime(2020, 3, 1, 12, 5, tzinfo=UTC).timestamp()
        assert store.write([completed(tenant="t_new", ts=ts, finished_at=ts + 1)]).requests == 1
        assert rows(store, ROLLUP) == rows(store, RAW) != []


def test_0009_backfills_a_populated_store_and_reruns_safely(tmp_path: Path) -> None:
    old = tmp_path / "old_migrations"
    old.mkdir()
    earlier = [m for m in discover() if m.version < 9]
    for migration in earlier:
        shutil.copy(MIGRATIONS_DIR / migration.path.name, old / migration.path.name)
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert [m.version for m in apply_migrations(store._client, old)] == [m.version for m in earlier]
        generate(store, 3_000, seed=3, end=END, days=1, batch=3_000, log=False)
        # a duplicate that got past the sink's de-duplication: the backfill counts it once (FINAL)
        store._client.command("INSERT INTO requests SELECT * FROM requests ORDER BY request_id LIMIT 5")

        assert [m.version for m in store.migrate()] == [9]
        assert store.migrate() == []
        backfilled = rows(store, ROLLUP)
        assert backfilled == rows(store, RAW)
        assert sum(r[4] for r in backfilled) == 3_000

        ts = datetime(2020, 3, 1, 23, 30, tzinfo=UTC).timestamp()
        later = [completed(tenant="t_later", ts=ts, finished_at=ts + 1, status_code=s) for s in (200, 429)]
        assert store.write(later).requests == 2
        kept = rows(store, ROLLUP)
        assert kept == rows(store, RAW) and len(kept) == len(backfilled) + 1

        for statement in backfill_statements():  # an interrupted migration re-run, or a rebuild by hand
            store._client.command(statement)
        assert rows(store, ROLLUP) == kept
