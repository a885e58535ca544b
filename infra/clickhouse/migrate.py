"""Apply the numbered ``migrations/NNNN_name.sql`` files once each, tracked in ``schema_migrations``.

Rules (also in README.md):
- files are applied in version order; a version is applied once and recorded with its sha256;
- every statement is idempotent (``IF NOT EXISTS``), so a run interrupted half-way is finished by
  the next run, and two processes migrating at once do no harm (``schema_migrations`` is a
  ReplacingMergeTree on ``version``, so a double record collapses);
- an applied file must never be edited: add a new number instead (an edit is logged as a warning);
- statements are split by ``sqltext.split_statements`` (quotes and comments are respected).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.clickhouse.sqltext import split_statements

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


class MigrationError(RuntimeError):
    """A migration file is malformed or a statement failed; names the file and the statement."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        return [s.text for s in split_statements(self.sql)]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``directory`` in version order; other files are ignored."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            logger.warning("ignoring %s: migration files are named NNNN_name.sql", path.name)
            continue
        version = int(match.group(1))
        if version in found:
            other = found[version].path.name
            raise MigrationError(f"two migrations with version {version}: {other}, {path.name}")
        found[version] = Migration(version, match.group(2), path, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied_versions(client: Any) -> dict[int, str]:
    """version -> checksum of the migrations recorded in ``schema_migrations``."""
    client.command(SCHEMA_MIGRATIONS_DDL)
    result = client.query(
        "SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version"
    )
    return {int(row[0]): str(row[1]) for row in result.result_rows}


def apply_migrations(client: Any, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the migrations not yet recorded; return those applied by this call (empty if none)."""
    migrations = discover(directory)
    done = applied_versions(client)
    applied: list[Migration] = []
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                logger.warning(
                    "migration %s was edited after it was applied (checksum differs); "
                    "changes must go in a new numbered file", migration.path.name,
                )
            continue
        for number, statement in enumerate(migration.statements, start=1):
            try:
                client.command(statement)
            except Exception as exc:
                head = " ".join(statement.split())[:120]
                raise MigrationError(
                    f"{migration.path.name} statement {number} failed: {exc}\n  statement: {head}"
                ) from exc
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        logger.info("applied ClickHouse migration %s", migration.path.name)
        applied.append(migration)
    return applied
