"""Migrations 0009 (``requests_per_hour``) and 0010 (``provider_requests_per_hour``, ``key_spend_per_hour``,
``guardrail_outcomes_per_hour``) on an empty store and on a store that already holds requests: the
backfills aggregate the rows written before the views existed, the views take every later insert, and
re-running the migrations' backfills rebuilds the same rollups.

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

from ..factories import completed, verdict

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
# 0010's rollups against the same raw rows: (rollup query, raw query) pairs
OPERATOR_ROLLUPS = (
    ("""SELECT hour, provider, model_requested, countMerge(requests), sumMerge(errors), sumMerge(streamed)
        FROM provider_requests_per_hour GROUP BY ALL ORDER BY ALL""",
     """SELECT toStartOfHour(ts) AS hour, provider, model_requested, count(), countIf(status_code >= 400),
        countIf(stream) FROM requests FINAL GROUP BY ALL ORDER BY ALL"""),
    ("""SELECT tenant, hour, api_key_id, team, countMerge(requests), sumMerge(cost_usd), sumMerge(unpriced),
        sumMerge(prompt_tokens), sumMerge(completion_tokens) FROM key_spend_per_hour GROUP BY ALL ORDER BY ALL""",
     """SELECT tenant, toStartOfHour(ts) AS hour, api_key_id, team, count(), sum(cost_usd), countIf(cost_usd IS NULL),
        sum(prompt_tokens), sum(completion_tokens) FROM requests FINAL GROUP BY ALL ORDER BY ALL"""),
    ("""SELECT tenant, hour, profile, guardrail, phase, outcome, countMerge(verdicts)
        FROM guardrail_outcomes_per_hour GROUP BY ALL ORDER BY ALL""",
     """SELECT tenant, toStartOfHour(ts) AS hour, profile, guardrail, phase, outcome, count()
        FROM guardrail_verdicts FINAL GROUP BY ALL ORDER BY ALL"""),
)


def rows(store: Store, sql: str) -> list[list[Any]]:
    return store.query_readonly(sql, max_rows=100_000).rows


def backfill_statements() -> list[str]:
    """0009's and 0010's TRUNCATEs and INSERT ... SELECTs, as an operator would re-run them."""
    found = [s for m in discover() if m.version in (9, 10)
             for s in m.statements if "TRUNCATE TABLE" in s or s.startswith("INSERT INTO")]
    assert len(found) == 8
    return found


def assert_rollups_equal_raw(store: Store) -> None:
    assert rows(store, ROLLUP) == rows(store, RAW)
    for rollup, raw in OPERATOR_ROLLUPS:
        assert rows(store, rollup) == rows(store, raw) != [], rollup


def test_0009_0010_on_an_empty_store(tmp_path: Path) -> None:
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        assert {9, 10} <= {m.version for m in store.migrate()}
        assert rows(store, "SELECT count() FROM requests_per_hour") == [[0]]
        ts = datetime(2020, 3, 1, 12, 5, tzinfo=UTC).timestamp()
        checked = [verdict("injection", outcome="flag"), verdict("secrets")]
        rc = completed(tenant="t_new", ts=ts, finished_at=ts + 1, guardrail_profile="default", verdicts=checked)
        assert store.write([rc]).requests == 1
        assert rows(store, ROLLUP) != []
        assert_rollups_equal_raw(store)


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

        assert [m.version for m in store.migrate()] == [m.version for m in discover() if m.version >= 9]
        assert store.migrate() == []
        backfilled = rows(store, ROLLUP)
        assert sum(r[4] for r in backfilled) == 3_000
        assert_rollups_equal_raw(store)

        ts = datetime(2020, 3, 1, 23, 30, tzinfo=UTC).timestamp()
        later = [completed(tenant="t_later", ts=ts, finished_at=ts + 1, status_code=s) for s in (200, 429)]
        assert store.write(later).requests == 2
        kept = rows(store, ROLLUP)
        assert len(kept) == len(backfilled) + 1
        assert_rollups_equal_raw(store)
        operator = [rows(store, rollup) for rollup, _ in OPERATOR_ROLLUPS]

        for statement in backfill_statements():  # an interrupted migration re-run, or a rebuild by hand
            store._client.command(statement)
        assert rows(store, ROLLUP) == kept
        assert [rows(store, rollup) for rollup, _ in OPERATOR_ROLLUPS] == operator
