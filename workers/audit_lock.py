"""``WriterLock``: who may write the audit chain, when more than one sink could run.

One key (``writer``) in the ``GW_AUDIT_WRITER`` bucket, whose entries live ``AUDIT_LOCK_TTL_S`` (the
bucket's max age). A sink holds the lock from a successful ``create`` (the key did not exist) and keeps
it by rewriting it with compare-and-set on the revision it wrote (``refresh``), well within the TTL; a
refresh that fails means another sink took it (this one stopped refreshing too long), and this one
stops writing at once. A sink that dies leaves the key to expire: another takes it within the TTL. A
clean shutdown deletes it, so a restarted sink takes it at once.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from schemas import subjects

log = logging.getLogger("gateway.audit")
LOCK_KEY = "writer"


class WriterLock:
    def __init__(self, js: JetStreamContext, source: str) -> None:
        self.js = js
        self.source = source
        self.revision = 0
        self._kv: KeyValue | None = None

    @property
    def held(self) -> bool:
        return self.revision > 0

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self.js.key_value(subjects.BUCKET_AUDIT_WRITER)
        return self._kv

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when held (now or already)."""
        if self.held:
            return await self.refresh()
        try:
            self.revision = await (await self._bucket()).create(LOCK_KEY, self.source.encode())
        except KeyWrongLastSequenceError:
            return False
        log.info("audit: %s is the chain's writer", self.source)
        return True

    async def refresh(self) -> bool:
        """Keep the lock; False (and no longer held) when another writer has it."""
        try:
            self.revision = await (await self._bucket()).update(LOCK_KEY, self.source.encode(), last=self.revision)
        except KeyWrongLastSequenceError:
            log.warning("audit: %s lost the chain's writer lock to another sink; it stops writing", self.source)
            self.revision = 0
            return False
        return True

    async def release(self) -> None:
        if not self.held:
            return
        try:
            await (await self._bucket()).delete(LOCK_KEY, last=self.revision)
        except KeyWrongLastSequenceError:
            pass
        self.revision = 0
