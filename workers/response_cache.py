"""The response cache's bucket (``GW_CACHE``) as the provider stage reads it and the output filter writes
it (``stages/cache.py`` says what is keyed and stored). A bucket that cannot be reached is a miss (and an
answer not stored): the cache never fails a request."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from schemas import subjects
from stages.cache import Entry

log = logging.getLogger("gateway.cache")


class ResponseCache:
    """``GW_CACHE`` (answers), or with ``bucket``, ``GW_CACHE_INDEX`` (the semantic cache's records)."""

    def __init__(self, nc: Callable[[], NatsClient], bucket: str = subjects.BUCKET_CACHE) -> None:
        self._nc = nc
        self._name = bucket
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._nc().jetstream().key_value(self._name)
        return self._kv

    async def get(self, key: str) -> Entry | None:
        try:
            entry = await (await self._bucket()).get(key)
        except KeyNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - the broker restarting, a bucket not made yet: a miss
            log.info("cache lookup failed (%r): answered without the cache", exc)
            self._kv = None
            return None
        return Entry.decode(entry.value) if entry.value else None

    async def put(self, key: str, data: bytes) -> bool:
        try:
            await (await self._bucket()).put(key, data)
        except Exception as exc:  # noqa: BLE001 - the answer went to the caller; only its reuse is lost
            log.info("cache store failed (%r)", exc)
            self._kv = None
            return False
        return True
