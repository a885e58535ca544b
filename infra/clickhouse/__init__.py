"""The ClickHouse store (chDB embedded or a server, one clickhouse-connect API): schema, sink writes, reads.

``open_store(url)`` is the entry point; see README.md for tables, ordering rules, TTLs and de-duplication.
"""

from __future__ import annotations

from infra.clickhouse.dedupe import DedupeSet
from infra.clickhouse.readonly import ReadOnlyViolation, check_readonly
from infra.clickhouse.store import QueryFailed, QueryResult, Store, WriteResult, open_store

__all__ = [
    "DedupeSet",
    "QueryFailed",
    "QueryResult",
    "ReadOnlyViolation",
    "Store",
    "WriteResult",
    "check_readonly",
    "open_store",
]
