"""``gateway sql``: read-only queries, against ``CLICKHOUSE_URL`` directly or, for the embedded store
(which only the sink may open), through the sink over NATS request/reply."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError

from infra.settings import Settings
from schemas import subjects


class SqlError(Exception):
    pass


async def connect_once(url: str) -> NatsClient:
    """A short-lived control connection for the CLI: fails in seconds when NATS is not there
    (``ConnectionError`` saying so) instead of reconnecting forever."""

    async def quiet(_exc: Exception) -> None:  # the failure is reported once, by the caller
        return None

    try:
        # max_reconnect_attempts=0 would retry forever (nats-py 2.16 only counts attempts when > 0)
        return await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False,
                                  error_cb=quiet)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, no servers: one message that says what to check
        raise ConnectionError(f"cannot reach the gateway's NATS at {url} (is `gateway up` running?): {exc}") \
            from None


async def run_query(settings: Settings, sql: str, timeout_s: float = 30.0) -> dict[str, Any]:
    if settings.clickhouse_url:
        return await asyncio.to_thread(_direct, settings.clickhouse_url, sql)
    url = settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    try:
        nc = await connect_once(url)
    except ConnectionError as exc:
        raise SqlError(str(exc)) from None
    try:
        msg = await nc.request(subjects.SQL_QUERY, orjson.dumps({"sql": sql}), timeout=timeout_s)
    except NoRespondersError:
        raise SqlError("no sink is answering queries (is it starting or restarting? see .gateway/logs/sink.log)") \
            from None
    except Exception as exc:  # noqa: BLE001 - a timeout or a lost connection: the caller gets a SqlError
        raise SqlError(f"no answer from the sink within {timeout_s}s: {type(exc).__name__}") from None
    finally:
        await nc.close()
    answer: dict[str, Any] = orjson.loads(msg.data)
    if "error" in answer:
        raise SqlError(str(answer["error"]))
    return answer


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
