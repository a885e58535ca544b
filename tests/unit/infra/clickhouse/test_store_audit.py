"""The audit log (migration 0007) against a real embedded chDB: rows stored exactly as hashed, the
chain's end read back (a restarted sink continues it), the rows read back as ``gateway audit verify``
reads them verify, and an ``ALTER TABLE ... UPDATE`` or ``DELETE`` of one row is named.

Its own store (module scope, fresh directory): only this module's rows exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from infra.clickhouse import Store
from infra.operator.audit_cli import COLUMNS
from schemas.audit import GENESIS, AuditEntry, AuditRow, extend
from schemas.audit_verify import verify
from schemas.events import ControlAttrs, ControlEvent
from schemas.ids import uuid7
from tests.support.store import migrated_store

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with migrated_store(tmp_path_factory.mktemp("chdb_audit")) as s:
        yield s


def entries(n: int, start: int = 0) -> list[AuditEntry]:
    return [AuditEntry(entry_id=uuid7(), ts=time.time(), kind="key", actor="cli:ana@box", subject=f"key.k{i}",
                       action="created", detail={"after": {"tenant": "acme", "name": "é"}})
            for i in range(start, start + n)]


def read_back(store: Store) -> list[AuditRow]:
    rows = store.query_readonly(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq, hash").rows
    return [AuditRow(seq=int(r[0]), ts_ms=int(r[1]), kind=str(r[2]), actor=str(r[3]), subject=str(r[4]),
                     action=str(r[5]), detail=str(r[6]), entry_id=str(r[7]), prev_hash=str(r[8]), hash=str(r[9]))
            for r in rows]


def test_an_empty_chain_starts_at_genesis(store: Store) -> None:
    tail = store.audit_tail()
    assert (tail.seq, tail.hash, tail.entry_ids) == (0, GENESIS, frozenset())


def test_rows_land_as_hashed_and_the_tail_continues_the_chain(store: Store) -> None:
    first = extend(entries(3), 0, GENESIS)
    assert store.write_audit(first) == 3
    tail = store.audit_tail()
    assert (tail.seq, tail.hash) == (3, first[-1].hash)
    assert tail.entry_ids == {r.entry_id for r in first}
    more = extend(entries(2, 3), tail.seq, tail.hash)
    store.write_audit(more)
    stored = read_back(store)
    assert stored == first + more
    assert verify(stored).intact


def test_an_update_of_one_row_is_named(store: Store) -> None:
    store._client.command("ALTER TABLE audit_log UPDATE actor = 'mallory' WHERE seq = 2 "
                          "SETTINGS mutations_sync = 1")
    report = verify(read_back(store))
    assert [(p.kind, p.seq) for p in report.problems] == [("altered", 2)]


def test_a_deleted_row_is_named(store: Store) -> None:
    store._client.command("ALTER TABLE audit_log DELETE WHERE seq = 4 SETTINGS mutations_sync = 1")
    report = verify(read_back(store))
    assert [(p.kind, p.seq) for p in report.problems] == [("altered", 2), ("missing", 4)]


def test_an_anchor_lands_in_gateway_events(store: Store) -> None:
    event = ControlEvent(event_id=uuid7(), ts=time.time(), kind="audit_anchor", subject="5", to_state="ab" * 32,
                         reason="periodic", source="sink-1", attrs=ControlAttrs(audit_seq=5, audit_hash="ab" * 32))
    assert store.write([event]).gateway_events == 1
    rows = store.query_readonly("SELECT toUInt64OrZero(subject), to_state FROM gateway_events "
                                "WHERE kind = 'audit_anchor'").rows
    assert rows == [[5, "ab" * 32]]
