"""Migration discovery (pure, no engine); applying them is tested with the store."""

from __future__ import annotations

from pathlib import Path

from infra.clickhouse.migrate import discover


def test_migration_files_are_numbered(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("SELECT 2")
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "notes.sql").write_text("SELECT 0")
    assert [(m.version, m.name) for m in discover(tmp_path)] == [(1, "a"), (2, "b")]
