"""Closing and reopening chDB stores in one process, and the dedupe preload after a restart.

Findings these tests pin down (chDB 4.4 / engine 26.9 via clickhouse-connect 1.12):
- one engine path per process at a time: opening a second directory while a store is open fails;
- after ``close()`` the process can open another directory, and reopen the first one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.clickhouse import DedupeSet, open_store
from schemas.wire import replace

from .factories import completed, request_batch

pytestmark = pytest.mark.server


def test_second_directory_while_open_fails_then_works_after_close(tmp_path: Path) -> None:
    first = open_store(f"chdb://{tmp_path / 'a'}")
    try:
        with pytest.raises(Exception, match="already initialized with path"):
            open_store(f"chdb://{tmp_path / 'b'}")
        # another connection to the *same* directory is fine (the store's own reader is one)
        first.migrate()
        assert first.query_readonly("SELECT 1").rows == [[1]]
    finally:
        first.close()
    second = open_store(f"chdb://{tmp_path / 'b'}")
    try:
        second.migrate()
        assert second.write(request_batch(2)).requests == 2
    finally:
        second.close()


def test_redelivery_after_restart_is_caught_by_preload(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'store'}"
    rc = completed(tenant="t_restart")
    with open_store(url) as store:
        store.migrate()
        assert store.write([rc]).requests == 1

    # the sink restarts: a fresh process-level set, preloaded from ClickHouse
    with open_store(url, dedupe=DedupeSet(max_entries=1000, ttl_s=600)) as store:
        assert store.migrate() == []
        assert rc.request_id in store.recent_request_ids(600)
        assert store.warm_dedupe() == 1
        redelivered = replace(rc, delivery=2)
        result = store.write([redelivered])
        assert (result.requests, result.duplicates, result.events) == (0, 1, 0)
        rows = store.query_readonly(
            "SELECT count() FROM requests WHERE request_id = {id:UUID}", {"id": rc.request_id}
        ).rows
        assert rows == [[1]]

    # without an explicit warm_dedupe(), the first write preloads by itself
    with open_store(url) as store:
        assert store.write([rc]).duplicates == 1
