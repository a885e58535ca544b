"""The actor the chain records, derived from the subject an entry arrived on (every subject form), not
from the publisher's claim: a forged ``admin-api:`` from another identity, a lie in the body, the old
bare subject."""

from __future__ import annotations

import pytest

from schemas.audit import AuditEntry, next_row, row_hash
from schemas.audit_actor import admin_actor, admin_fingerprint, authenticated, derive_actor, nats_actor
from schemas.wire import replace


def entry(actor: str, **detail: str) -> AuditEntry:
    return AuditEntry(entry_id="e1", ts=1.0, kind="key", actor=actor, subject="key.k", action="created",
                      detail=dict(detail))


@pytest.mark.parametrize(("subject", "claim", "actor"), [
    ("gw.audit.by.admin", "nats:admin", "nats:admin"),
    ("gw.audit.by.op-alice", "nats:op-alice", "nats:op-alice"),
    ("gw.audit.by.sink", "nats:sink", "nats:sink"),
    ("gw.audit.by.supervisor", "nats:supervisor", "nats:supervisor"),
    ("gw.audit.by.anonymous", "nats:anonymous", "nats:anonymous"),
    ("gw.audit.by.op-mallory", "root", "nats:op-mallory"),  # the body's word is not taken
    ("gw.audit.by.ingress", "admin-api:alice", "admin-api:alice via nats:ingress"),
    ("gw.audit.by.ingress", "admin-api:3f2a9c0b1d4e", "admin-api:3f2a9c0b1d4e via nats:ingress"),
    ("gw.audit.by.ingress", "nats:ingress", "nats:ingress"),
    ("gw.audit.by.ingress", "root", "nats:ingress"),  # ingress is believed about admin keys only
    ("gw.audit.by.ingress", "admin-api:alice via nats:admin", "nats:ingress"),  # not a key name
    ("gw.audit.by.ingress", "admin-api:", "nats:ingress"),
    ("gw.audit.by.sink", "admin-api:boss", "nats:sink"),  # forged: only ingress authenticates admin keys
    ("gw.audit.by.op-mallory", "admin-api:alice", "nats:op-mallory"),
    ("gw.audit", "cli:ann@box", "unauthenticated:cli:ann@box"),  # an earlier version's bare subject
    ("gw.audit", "admin-api", "unauthenticated:admin-api"),
    ("gw.audit.by", "nats:admin", "unauthenticated:nats:admin"),  # no identity token
    ("gw.audit.by.a.b", "nats:a", "unauthenticated:nats:a"),  # not one token
    ("gw.audit.other", "nats:admin", "unauthenticated:nats:admin"),
])
def test_the_actor_comes_from_the_subject(subject: str, claim: str, actor: str) -> None:
    assert derive_actor(subject, claim) == actor
    assert authenticated(subject, entry(claim)).actor == actor


def test_a_claim_not_believed_is_kept_in_the_detail_and_a_planted_one_dropped() -> None:
    forged = authenticated("gw.audit.by.sink", entry("admin-api:boss", note="x"))
    assert forged.actor == "nats:sink" and forged.detail == {"note": "x", "claimed_actor": "admin-api:boss"}
    lie = authenticated("gw.audit.by.op-mallory", entry("root"))
    assert lie.detail == {"claimed_actor": "root"}
    # believed claims leave no trace; a publisher cannot put a claimed_actor of its own
    for subject, claim in (("gw.audit.by.admin", "nats:admin"), ("gw.audit.by.ingress", "admin-api:alice"),
                           ("gw.audit", "cli:ann@box")):
        assert authenticated(subject, entry(claim, claimed_actor="someone")).detail == {}
    same = entry("nats:admin")
    assert authenticated("gw.audit.by.admin", same) == same  # nothing else of the entry changes


def test_the_chain_hashes_the_derived_actor() -> None:
    row = next_row(authenticated("gw.audit.by.op-mallory", entry("root")), 0, "0" * 64)
    assert row.actor == "nats:op-mallory" and '"claimed_actor":"root"' in row.detail
    assert row_hash(row) == row.hash
    assert row_hash(replace(row, actor="root")) != row.hash  # rewriting the actor to the claim breaks the chain


def test_names() -> None:
    sha = "3f2a9c0b1d4e" + "0" * 52
    assert admin_fingerprint(sha) == "3f2a9c0b1d4e" and admin_actor("alice") == "admin-api:alice"
    assert nats_actor("op-alice") == "nats:op-alice"
