"""How every long-lived process connects to NATS: reconnect forever, quickly, and quietly.

nats-server restarts (the supervisor brings the embedded one back within a second; a cluster node
fails over): clients retry every ``RECONNECT_WAIT_S`` without limit, buffer what they publish in the
meantime, and re-subscribe. A dropped connection is an expected event, so it is one log line, not a
traceback (nats-py's default error callback prints one for every socket error).

Every connection authenticates as this process's NATS identity (``GATEWAY_NATS_CREDS``: an nkey seed
file, or a ``.creds`` file) and takes its reply inboxes under that identity's prefix, the only inboxes
nats-server lets it read (``infra/nats_permissions.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
from nats.aio.client import Client as NatsClient

from infra.nats_identity import identity_of
from infra.settings import Settings
from schemas import subjects

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

log = logging.getLogger("gateway.nats")

RECONNECT_WAIT_S = 0.25
PENDING_BYTES = 32 * 1024 * 1024
"""What a client buffers while reconnecting (nats-py's default is 2 MB): a few seconds of traffic."""

Callback = Callable[[], Awaitable[None]]


class CredentialsUnreadable(RuntimeError):
    pass


def credentials(path: Path | None) -> dict[str, Any]:
    """The options that make a connection authenticate as the identity whose credentials are in ``path``
    (none: connect without, as to a server without users)."""
    if path is None:
        return {}
    if not os.access(path, os.R_OK):
        raise CredentialsUnreadable(
            f"cannot read the NATS credentials {path} (GATEWAY_NATS_CREDS): run as the user who runs `gateway up`, "
            "or set GATEWAY_NATS_CREDS to an operator's credentials file (`gateway operators add NAME`)")
    auth = {"user_credentials": str(path)} if path.suffix == ".creds" else {"nkeys_seed": str(path)}
    return {**auth, "inbox_prefix": subjects.inbox_prefix(identity_of(path))}


def options(name: str, *, reconnected: Callback | None = None, disconnected: Callback | None = None,
            creds: Path | None = None) -> dict[str, Any]:
    """Connection options for ``nats.connect`` or FastStream's ``NatsBroker``; ``creds``, the identity's
    credentials (default: this process's ``GATEWAY_NATS_CREDS``)."""

    async def on_error(exc: Exception) -> None:
        # every failed reconnect attempt lands here (4 a second): the disconnect itself is logged once
        log.debug("%s: NATS connection error: %s", name, exc.__class__.__name__ if not str(exc) else exc)

    async def on_disconnected() -> None:
        log.info("%s: disconnected from NATS; reconnecting", name)
        if disconnected is not None:
            await disconnected()

    async def on_reconnected() -> None:
        log.info("%s: reconnected to NATS", name)
        if reconnected is not None:
            await reconnected()

    return {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT_S,
        "pending_size": PENDING_BYTES,
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        **credentials(creds if creds is not None else Settings().nats_creds),
    }


async def connect(url: str, name: str, *, reconnected: Callback | None = None,
                  disconnected: Callback | None = None, creds: Path | None = None, **extra: Any) -> NatsClient:
    return await nats.connect(url, **{**options(name, reconnected=reconnected, disconnected=disconnected,
                                                creds=creds), **extra})


async def raw_body(message: Any) -> Any:
    """FastStream decoder: hand the handler the raw payload bytes (no per-message JSON work)."""
    return message.body


def make_broker(url: str, name: str, *, reconnected: Callback | None = None) -> NatsBroker:
    """A worker process's FastStream broker: raw bytes to handlers, no per-message logging or typing
    (ARCHITECTURE.md §3: these levers cut FastStream's cost per message by two thirds)."""
    from faststream.nats import NatsBroker

    return NatsBroker(url, apply_types=False, logger=None, decoder=raw_body, **options(name, reconnected=reconnected))
