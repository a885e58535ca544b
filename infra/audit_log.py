"""Recording an audit entry: publish it into the GW_AUDIT stream on ``gw.audit.by.<identity>``, the
publishing process's NATS identity (``infra/nats_identity.py``); the stream's order is the hash chain's
order; the sink chains and stores it (``workers/audit_writer.py``), taking the actor from that subject
(the broker lets an identity publish only on its own), not from the entry's ``actor`` claim.

Every producer of a control-plane change calls ``record`` once the change is made. The entry's id is
the message id (``Nats-Msg-Id``), so a retried publish is stored once within the stream's duplicate
window (and the chain writer skips ids it already chained). A publish that still fails raises
``AuditNotRecorded``: the change stands, and the caller says it went unaudited.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from schemas import subjects
from schemas.audit import AuditEntry
from schemas.errors import AuditNotRecorded
from schemas.wire import encode

ATTEMPTS = 3


async def record(js: JetStreamContext, entry: AuditEntry, identity: str, timeout_s: float = 2.0) -> None:
    """Store ``entry`` in GW_AUDIT (acknowledged by JetStream) as published by ``identity`` (this
    process's NATS identity), retrying briefly."""
    subject = subjects.audit_subject(identity)
    payload = encode(entry)
    headers = {"Nats-Msg-Id": entry.entry_id}
    for attempt in range(ATTEMPTS):
        try:
            await js.publish(subject, payload, headers=headers, timeout=timeout_s)
            return
        except Exception as exc:  # noqa: BLE001 - NATS down, no stream: retried, then reported as our error
            if attempt == ATTEMPTS - 1:
                raise AuditNotRecorded(
                    f"The {entry.kind} change {entry.action} on {entry.subject!r} was made, but its audit entry "
                    f"could not be stored ({type(exc).__name__}: {exc}); is the gateway (and its GW_AUDIT "
                    "stream) running?") from exc
            await asyncio.sleep(0.2 * (attempt + 1))
