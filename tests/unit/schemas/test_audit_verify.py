"""Verifying the chain: intact, altered, missing, inserted, --since and the anchor."""

from __future__ import annotations

from schemas.audit import GENESIS, AuditEntry, AuditRow, extend, next_row, row_hash
from schemas.audit_actor import authenticated
from schemas.audit_verify import Anchor, verify
from schemas.wire import replace

SENT = [  # (subject, claimed actor): every actor form the chain writer records
    ("gw.audit.by.admin", "nats:admin"), ("gw.audit.by.ingress", "admin-api:alice"),
    ("gw.audit.by.op-mallory", "root"), ("gw.audit", "cli:ann@box"), ("gw.audit.by.sink", "nats:sink"),
]


def chain(n: int) -> list[AuditRow]:
    """``n`` rows as the chain writer makes them: the actor derived from each entry's subject."""
    entries: list[AuditEntry] = []
    for i in range(1, n + 1):
        subject, claim = SENT[(i - 1) % len(SENT)]
        entries.append(authenticated(subject, AuditEntry(entry_id=f"e{i}", ts=1000.0 + i, kind="config", actor=claim,
                                                         subject=f"v{i}", action="applied",
                                                         detail={"to_version": f"v{i}"})))
    return extend(entries, 0, GENESIS)


def test_every_actor_form_verifies_and_restoring_a_claim_is_an_alteration() -> None:
    rows = chain(5)
    assert [r.actor for r in rows] == ["nats:admin", "admin-api:alice via nats:ingress", "nats:op-mallory",
                                       "unauthenticated:cli:ann@box", "nats:sink"]
    assert '"claimed_actor":"root"' in rows[2].detail
    assert verify(rows).intact
    for forged in (replace(rows[1], actor="admin-api:alice"), replace(rows[2], actor="root"),
                   replace(rows[2], detail='{"to_version":"v3"}')):  # the claim taken back out of the record
        broken = verify([*rows[:forged.seq - 1], forged, *rows[forged.seq:]])
        assert not broken.intact and broken.problems[0].seq == forged.seq
        assert broken.problems[0].kind == "altered"


def test_an_intact_chain_verifies() -> None:
    rows = chain(5)
    report = verify(rows, anchor=Anchor(seq=5, hash=rows[-1].hash))
    assert report.intact and report.checked == 5 and report.last_seq == 5 and report.last_hash == rows[-1].hash


def test_an_empty_chain_is_intact_without_an_anchor() -> None:
    assert verify([]).intact


def test_an_altered_row_is_named_and_only_it() -> None:
    rows = chain(5)
    rows[2] = replace(rows[2], detail='{"to_version":"evil"}')
    report = verify(rows)
    assert [(p.kind, p.seq) for p in report.problems] == [("altered", 3)]
    assert "seq 3 was altered" in report.problems[0].message


def test_an_altered_row_whose_hash_was_recomputed_breaks_the_next_link() -> None:
    rows = chain(5)
    forged = replace(rows[2], actor="someone-else")
    rows[2] = replace(forged, hash=row_hash(forged))
    report = verify(rows)
    assert [(p.kind, p.seq) for p in report.problems] == [("inserted", 4)]
    assert "seq 3 was rewritten" in report.problems[0].message


def test_a_deleted_row_is_named_missing() -> None:
    rows = chain(5)
    del rows[1]
    report = verify(rows)
    assert [(p.kind, p.seq, p.last_seq) for p in report.problems] == [("missing", 2, 2)]
    assert "seq 2 missing" in report.problems[0].message


def test_deleted_rows_at_the_start_are_missing() -> None:
    report = verify(chain(5)[2:])
    assert [(p.kind, p.seq, p.last_seq) for p in report.problems] == [("missing", 1, 2)]


def test_a_second_row_with_a_taken_seq_is_named_inserted_whatever_its_place() -> None:
    rows = chain(4)
    extra = next_row(AuditEntry(entry_id="x", ts=1.0, kind="key", actor="a", subject="key.x", action="created"),
                     1, rows[0].hash)
    assert extra.seq == 2
    for at in (1, 2):
        tampered = [*rows]
        tampered.insert(at, extra)
        report = verify(tampered)
        assert [(p.kind, p.seq) for p in report.problems] == [("inserted", 2)]
        assert "'x'" in report.problems[0].message


def test_a_row_replaced_by_a_self_consistent_forgery_is_named() -> None:
    rows = chain(4)
    forged = next_row(AuditEntry(entry_id="f", ts=1.0, kind="key", actor="a", subject="key.f", action="created"),
                      2, "ee" * 32)
    rows[2] = forged
    report = verify(rows)
    assert [(p.kind, p.seq) for p in report.problems][0] == ("inserted", 3)


def test_since_trusts_the_first_rows_prev_hash() -> None:
    rows = chain(6)[3:]
    assert verify(rows, trust_first=True).intact
    assert not verify(rows).intact


def test_since_still_finds_an_alteration() -> None:
    rows = chain(6)[3:]
    rows[1] = replace(rows[1], ts_ms=1)
    assert [(p.kind, p.seq) for p in verify(rows, trust_first=True).problems] == [("altered", 5)]


def test_rows_deleted_at_the_tail_are_missing_against_the_anchor() -> None:
    rows = chain(5)
    report = verify(rows[:3], anchor=Anchor(seq=5, hash=rows[-1].hash, ts="2026-12-04 14:00:00"))
    assert [(p.kind, p.seq, p.last_seq) for p in report.problems] == [("missing", 4, 5)]
    assert "latest anchor is seq 5" in report.problems[0].message


def test_a_chain_rewritten_from_before_the_anchor_is_named() -> None:
    rows = chain(5)
    report = verify(rows, anchor=Anchor(seq=4, hash="00" * 32))
    assert [(p.kind, p.seq) for p in report.problems] == [("altered", 4)]


def test_an_empty_table_against_an_anchor_is_missing_unless_reading_from_a_later_point() -> None:
    anchor = Anchor(seq=2, hash="ab" * 32)
    assert [(p.kind, p.seq, p.last_seq) for p in verify([], anchor=anchor).problems] == [("missing", 1, 2)]
    assert verify([], trust_first=True, anchor=anchor).intact
