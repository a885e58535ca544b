"""A migrated embedded store (chDB) for the tests that read and write the real tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.clickhouse import Store, open_store


@contextmanager
def migrated_store(directory: Path) -> Iterator[Store]:
    """A store under ``directory`` with every migration applied, closed afterwards."""
    store = open_store(f"chdb://{directory / 'store'}")
    store.migrate()
    try:
        yield store
    finally:
        store.close()
