"""``gateway sql``: read-only queries, against ``CLICKHOUSE_URL`` directly or, for the embedded store
(which only the sink may open), through the sink over NATS request/reply."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NatsClient

from infra.nats_connect import CredentialsUnreadable, credentials
from infra.nats_identity import identity_of
from infra.operator.cli_creds import WHAT_TO_DO, NoCredentials, cli_credentials
from infra.settings import Settings
from infra.sink_query import SqlError as SqlError  # re-exported: the CLI commands catch it here
from infra.sink_query import ask_sink

T = TypeVar("T")


def control_credentials(settings: Settings, *, analyst: bool = False) -> Path | None:
    """The CLI's NATS credentials (``cli_creds``), or a ``ConnectionError`` that says what to do."""
    try:
        return cli_credentials(settings, analyst=analyst)
    except NoCredentials as exc:
        raise ConnectionError(str(exc)) from None


def control_nats_url(nats_url: str | None, settings: Settings) -> str:
    """``--nats-url``, else ``NATS_URL``, else the embedded gateway's: where every operator command connects."""
    return str(nats_url or settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}")


def control_identity(settings: Settings) -> tuple[Path | None, str]:
    """The CLI's credentials and the identity they name, which the broker authenticates and which is so the
    actor of the command's audit entries; ``ConnectionError`` (none readable) or ``IdentityError``."""
    creds = control_credentials(settings)
    return creds, identity_of(creds)


async def with_control_connection(url: str, creds: Path | None, work: Callable[[NatsClient], Awaitable[T]]) -> T:
    """Run ``work`` on a short-lived control connection (``connect_once``), closed whatever happens."""
    nc = await connect_once(url, creds)
    try:
        return await work(nc)
    finally:
        await nc.close()


async def connect_once(url: str, creds: Path | None = None) -> NatsClient:
    """A short-lived control connection for the CLI, as the identity in ``creds``: fails in seconds when
    NATS is not there or refuses the identity (``ConnectionError`` saying so) instead of reconnecting forever."""

    async def quiet(_exc: Exception) -> None:  # the failure is reported once, by the caller
        return None

    try:
        auth = credentials(creds)
    except CredentialsUnreadable as exc:
        raise ConnectionError(str(exc)) from None
    try:
        # max_reconnect_attempts=0 would retry forever (nats-py 2.16 only counts attempts when > 0)
        return await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False,
                                  error_cb=quiet, name="gateway-cli", **auth)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, no servers: one message that says what to check
        if "authorization" in str(exc).lower():
            raise ConnectionError(f"the gateway's NATS at {url} refused the credentials "
                                  f"{creds or '(none)'}: {WHAT_TO_DO}") from None
        raise ConnectionError(f"cannot reach the gateway's NATS at {url} (is `gateway up` running?): {exc}") \
            from None


async def run_query(settings: Settings, sql: str, timeout_s: float = 30.0) -> dict[str, Any]:
    if settings.clickhouse_url:
        return await asyncio.to_thread(_direct, settings.clickhouse_url, sql)
    url = settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    try:
        nc = await connect_once(url, control_credentials(settings, analyst=True))
    except ConnectionError as exc:
        raise SqlError(str(exc)) from None
    try:
        return await ask_sink(nc, sql, timeout_s)
    finally:
        await nc.close()


def _direct(url: str, sql: str) -> dict[str, Any]:
    from infra.clickhouse.readonly import ReadOnlyViolation
    from infra.clickhouse.store import open_store

    try:
        store = open_store(url)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad credentials: said, not a traceback
        raise SqlError(f"cannot open the store at CLICKHOUSE_URL: {exc}; check that the server is up and the URL's "
                       "user and password") from None
    try:
        result = store.query_readonly(sql)
    except ReadOnlyViolation as exc:
        raise SqlError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a ClickHouse error for the analyst
        raise SqlError(str(exc)) from None
    finally:
        store.close()
    return {"columns": result.columns, "types": result.types, "rows": result.rows}
