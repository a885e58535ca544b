"""The tamper-evident audit log as data: what a producer records (``AuditEntry``), the row it becomes
in the hash chain (``AuditRow``), and the chain's exact canonical form.

A producer (``gateway config apply``, the key and budget admin, the sink for guardrail blocks)
publishes an ``AuditEntry`` on ``gw.audit.by.<its NATS identity>`` (the GW_AUDIT stream); the sink, the
single chain writer, turns each into the next ``AuditRow`` of ``audit_log``, with the actor that subject
authenticates (``schemas/audit_actor.py``). Every row carries
``hash = hex(sha256(prev_hash_bytes ‖ canonical_row_bytes))`` where

- ``prev_hash_bytes`` are the 32 raw bytes of the previous row's ``hash`` (hex-decoded); the first
  row's ``prev_hash`` is ``GENESIS`` (64 zeros);
- ``canonical_row_bytes`` is the UTF-8 JSON array
  ``[seq, ts_ms, kind, actor, subject, action, detail, entry_id, prev_hash]`` (``seq`` and ``ts_ms``,
  the row's time in epoch milliseconds, as JSON integers; the rest as JSON strings, ``detail`` being
  the stored text itself), written with no whitespace and every non-ASCII character escaped as
  ``\\uXXXX``: exactly Python's ``json.dumps(row, separators=(",", ":"), ensure_ascii=True)``.

``detail`` is canonical JSON itself (``canonical_json``: sorted keys, no whitespace, ASCII), so the
same change always reads the same; the chain hashes the stored text as is. Secrets and key hashes are
never put in an entry (``schemas/audit_detail.py`` builds the summaries).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from schemas.wire import JSONObject, JSONValue, Message

SCHEMA_VERSION = 1
GENESIS = "0" * 64
"""The ``prev_hash`` of the first row of the chain."""

AuditKind = Literal["config", "key", "budget", "breaker", "guardrail_block"]
"""What changed: a config version applied (guardrail profile changes included), a virtual key
created/updated/revoked/rotated, a team or tenant budget set, a breaker forced, a request blocked by
a guardrail."""


class AuditEntry(Message, frozen=True, kw_only=True):
    """One control-plane change or guardrail block, as its producer records it (``gw.audit.by.<identity>``)."""

    schema_version: int = SCHEMA_VERSION
    entry_id: str
    """Unique per change (a UUIDv7; ``block:<request_id>`` for a guardrail block): a redelivered
    entry is written once."""
    ts: float
    """When the change happened (epoch seconds)."""
    kind: AuditKind
    actor: str
    """Who, as the publisher claims it: ``nats:<its identity>``, or ingress's ``admin-api:<key name or
    fingerprint>``. Only a claim: the chain writer records the actor the entry's subject authenticates
    (``schemas/audit_actor.py``), keeping a differing claim in the detail as ``claimed_actor``."""
    subject: str
    """What it changed: the config version, ``key.<id>``, ``team.<id>``, a target id, a request id."""
    action: str
    """``applied``, ``created``, ``updated``, ``revoked``, ``rotated``, ``set``, ``forced``, ``blocked``."""
    detail: JSONObject = {}
    """Before/after summary; never a secret or a key hash."""


class AuditRow(Message, frozen=True, kw_only=True):
    """One row of ``audit_log``: an entry at its place in the chain."""

    seq: int
    ts_ms: int
    kind: str
    actor: str
    subject: str
    action: str
    detail: str
    entry_id: str
    prev_hash: str
    hash: str


def canonical_json(value: JSONValue) -> str:
    """Sorted keys, no whitespace, ASCII only: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_row(seq: int, ts_ms: int, kind: str, actor: str, subject: str, action: str, detail: str,
                  entry_id: str, prev_hash: str) -> bytes:
    """The bytes hashed for a row: every column but ``hash``, in the documented order."""
    row = [seq, ts_ms, kind, actor, subject, action, detail, entry_id, prev_hash]
    return json.dumps(row, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """``hex(sha256(bytes.fromhex(prev_hash) ‖ canonical))``; ``ValueError`` if ``prev_hash`` is not hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def row_hash(row: AuditRow) -> str:
    """The hash ``row`` should carry, recomputed from its other columns."""
    return chain_hash(row.prev_hash, canonical_row(row.seq, row.ts_ms, row.kind, row.actor, row.subject,
                                                   row.action, row.detail, row.entry_id, row.prev_hash))


def next_row(entry: AuditEntry, prev_seq: int, prev_hash: str) -> AuditRow:
    """The row ``entry`` becomes after the row (``prev_seq``, ``prev_hash``); (0, GENESIS) before the first."""
    seq = prev_seq + 1
    ts_ms = max(0, round(entry.ts * 1000))
    detail = canonical_json(entry.detail)
    canonical = canonical_row(seq, ts_ms, entry.kind, entry.actor, entry.subject, entry.action, detail,
                              entry.entry_id, prev_hash)
    return AuditRow(seq=seq, ts_ms=ts_ms, kind=entry.kind, actor=entry.actor, subject=entry.subject,
                    action=entry.action, detail=detail, entry_id=entry.entry_id, prev_hash=prev_hash,
                    hash=chain_hash(prev_hash, canonical))


def extend(entries: list[AuditEntry], prev_seq: int, prev_hash: str) -> list[AuditRow]:
    """The rows of ``entries``, in their order, after (``prev_seq``, ``prev_hash``)."""
    rows: list[AuditRow] = []
    for entry in entries:
        row = next_row(entry, prev_seq, prev_hash)
        rows.append(row)
        prev_seq, prev_hash = row.seq, row.hash
    return rows
