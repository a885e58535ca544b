"""Who an audit entry is recorded as: derived from the subject it arrived on, not from its body.

The broker lets the NATS identity X publish audit entries only on ``gw.audit.by.X``, so the subject is
authenticated while the entry's ``actor`` is only its publisher's claim. The chain writer records
(``authenticated``):

- ``nats:<identity>`` for an entry on ``gw.audit.by.<identity>`` (``nats:admin``, ``nats:op-alice``,
  ``nats:sink`` for a guardrail block, ``nats:supervisor`` for the config file ``gateway up`` published);
- ``admin-api:<name-or-fingerprint> via nats:ingress`` for an entry on ``gw.audit.by.ingress`` claiming
  ``admin-api:<name>``: ingress authenticated the HTTP caller by its admin key (the key's name in the
  config, or the first 12 hex digits of its SHA-256), and only ingress is believed about it;
- ``unauthenticated:<claimed actor>`` for an entry on the bare ``gw.audit`` of earlier versions (or any
  other subject that names no identity).

A claim that differs from the recorded actor is kept in the detail as ``claimed_actor`` (a forged
``admin-api:`` or ``root`` from another identity stays visible); the writer owns that field, so a
publisher cannot set it. The result is what the chain hashes (``schemas/audit.py next_row``).
"""

from __future__ import annotations

import re

from schemas import subjects
from schemas.audit import AuditEntry
from schemas.wire import JSONObject, replace

INGRESS = "ingress"
"""The identity that authenticates HTTP callers of the admin API."""
ADMIN_API = "admin-api:"
ADMIN_CLAIM = re.compile(r"admin-api:[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
"""What ingress may claim: ``admin-api:`` and an admin key's name or fingerprint."""
CLAIMED = "claimed_actor"
"""The detail field holding a claim the writer did not record as the actor."""
UNAUTHENTICATED = "unauthenticated:"


def nats_actor(identity: str) -> str:
    """The actor of an entry published by this NATS identity."""
    return f"nats:{identity}"


def admin_actor(name: str) -> str:
    """What ingress claims for an admin API caller (``name``: the admin key's name or fingerprint)."""
    return f"{ADMIN_API}{name}"


def admin_fingerprint(key_sha256: str) -> str:
    """An admin key's public name: the first 12 hex digits of its SHA-256 (never the key itself)."""
    return key_sha256[:12]


def derive_actor(subject: str, claim: str) -> str:
    """The actor recorded for an entry claiming ``claim`` that arrived on ``subject`` (module doc)."""
    identity = subjects.audit_identity(subject)
    if identity is None:
        return f"{UNAUTHENTICATED}{claim}"
    if identity == INGRESS and ADMIN_CLAIM.fullmatch(claim):
        return f"{claim} via {nats_actor(INGRESS)}"
    return nats_actor(identity)


def authenticated(subject: str, entry: AuditEntry) -> AuditEntry:
    """``entry`` as the chain records it: its actor derived from ``subject``, a differing claim kept in
    the detail as ``claimed_actor`` (and a publisher's own ``claimed_actor`` dropped)."""
    actor = derive_actor(subject, entry.actor)
    detail: JSONObject = {k: v for k, v in entry.detail.items() if k != CLAIMED}
    believed = actor == entry.actor or actor.startswith(f"{entry.actor} via ") \
        or actor == f"{UNAUTHENTICATED}{entry.actor}"
    if not believed:
        detail[CLAIMED] = entry.actor
    return replace(entry, actor=actor, detail=detail)
