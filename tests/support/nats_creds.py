"""Connecting a test to a gateway's NATS as one of its identities (the embedded server refuses anyone
else): the seed ``gateway up`` generated under the data dir, and that identity's own inbox prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from infra.nats_creds import seed_path
from infra.operator.launcher import TEST_CLIENT
from schemas import subjects


class Refusals:
    """What nats-server refused a connection (its ``error_cb``): permissions violations, in order."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def record(self, exc: Exception) -> None:  # nats-py wants a coroutine function
        self.errors.append(str(exc))

    def of(self, kind: str, subject: str) -> bool:
        """Whether a ``publish`` or ``subscription`` to ``subject`` was refused (nats-py lower-cases the
        server's message)."""
        return f'nats: permissions violation for {kind} to "{subject}"'.lower() in (e.lower() for e in self.errors)


def creds_options(data_dir: Path, identity: str) -> dict[str, Any]:
    return {"nkeys_seed": str(seed_path(data_dir, identity)), "inbox_prefix": subjects.inbox_prefix(identity)}


async def connect_as(url: str, data_dir: Path, identity: str, refusals: Refusals | None = None,
                     **extra: Any) -> NatsClient:
    """A connection as ``identity`` (``admin`` or ``supervisor`` for a test's own set-up and checks), named
    ``test-<identity>`` so its refusals in nats-server's log are told apart from the gateway's own
    (``RunningGateway.permission_violations``)."""
    return await nats.connect(url, **creds_options(data_dir, identity), error_cb=(refusals or Refusals()).record,
                              allow_reconnect=False, connect_timeout=5, name=f"{TEST_CLIENT}{identity}", **extra)


def bucket_values(url: str, data_dir: Path, bucket: str) -> list[bytes]:
    """Every value in a key-value bucket of a running gateway, read as ``admin``."""
    async def read() -> list[bytes]:
        nc = await connect_as(url, data_dir, "admin")
        try:
            kv = await nc.jetstream().key_value(bucket)
            try:
                keys = await kv.keys()
            except Exception:  # noqa: BLE001 - nats-py raises when the bucket is empty
                return []
            return [entry.value or b"" for k in keys if (entry := await kv.get(k)) is not None]
        finally:
            await nc.close()
    return asyncio.run(read())
