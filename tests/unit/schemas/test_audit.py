"""The audit chain's canonical form and hash, as documented (schemas/audit.py, infra/clickhouse/README.md)."""

from __future__ import annotations

import hashlib

import pytest

from schemas.audit import GENESIS, AuditEntry, canonical_json, canonical_row, chain_hash, extend, next_row, row_hash


def entry(n: int = 1, **changes: object) -> AuditEntry:
    fields: dict[str, object] = {"entry_id": f"e{n}", "ts": 1_764_000_000.123 + n, "kind": "key",
                                 "actor": "cli:ana@box", "subject": f"key.k{n}", "action": "created",
                                 "detail": {"b": [1, 2], "a": {"z": "é", "y": None}}}
    fields.update(changes)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def test_canonical_json_sorts_keys_without_whitespace_and_escapes_non_ascii() -> None:
    assert canonical_json({"b": [1, 2], "a": {"z": "é", "y": None}}) == '{"a":{"y":null,"z":"\\u00e9"},"b":[1,2]}'


def test_canonical_row_is_the_documented_json_array() -> None:
    got = canonical_row(3, 1500, "key", "admin-api", "key.k1", "revoked", '{"a":1}', "id-3", "ab" * 32)
    assert got == b'[3,1500,"key","admin-api","key.k1","revoked","{\\"a\\":1}","id-3","' + b"ab" * 32 + b'"]'


def test_the_hash_is_sha256_of_the_raw_previous_hash_then_the_canonical_row() -> None:
    # what an auditor does by hand: xxd -r -p <<< "$prev_hash"; printf '%s' "$canonical" | sha256sum
    row = next_row(entry(), 0, GENESIS)
    by_hand = ('[1,1764000001123,"key","cli:ana@box","key.k1","created",'
               '"{\\"a\\":{\\"y\\":null,\\"z\\":\\"\\\\u00e9\\"},\\"b\\":[1,2]}","e1","' + GENESIS + '"]')
    assert row.hash == hashlib.sha256(bytes(32) + by_hand.encode()).hexdigest()
    assert row.seq == 1 and row.prev_hash == GENESIS and row.ts_ms == 1_764_000_001_123
    assert row.detail == '{"a":{"y":null,"z":"\\u00e9"},"b":[1,2]}'


def test_extend_links_each_row_to_the_previous_and_continues_a_chain() -> None:
    first = extend([entry(1), entry(2)], 0, GENESIS)
    more = extend([entry(3)], first[-1].seq, first[-1].hash)
    rows = first + more
    assert [r.seq for r in rows] == [1, 2, 3]
    assert [r.prev_hash for r in rows] == [GENESIS, rows[0].hash, rows[1].hash]
    assert all(row_hash(r) == r.hash for r in rows)
    assert len({r.hash for r in rows}) == 3


@pytest.mark.parametrize("field", ["ts", "kind", "actor", "subject", "action", "detail", "entry_id"])
def test_every_column_is_in_the_hash(field: str) -> None:
    values: dict[str, object] = {"ts": 5.0, "kind": "budget", "actor": "x", "subject": "team.t", "action": "set",
                                 "detail": {"c": 1}, "entry_id": "other"}
    assert next_row(entry(1, **{field: values[field]}), 0, GENESIS).hash != next_row(entry(1), 0, GENESIS).hash


def test_seq_and_prev_hash_are_in_the_hash() -> None:
    base = next_row(entry(), 0, GENESIS)
    assert next_row(entry(), 1, GENESIS).hash != base.hash
    assert next_row(entry(), 0, "11" * 32).hash != base.hash


def test_chain_hash_refuses_a_prev_hash_that_is_not_hex() -> None:
    with pytest.raises(ValueError):
        chain_hash("not-hex", b"[]")
