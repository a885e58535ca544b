"""A read-only query asked of the sink over NATS (``gw.sql.query``): the embedded store is locked to the
sink's process, so every other reader (``gateway sql``, the dashboard) goes through it this one way."""

from __future__ import annotations

from typing import Any

import orjson
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError

from schemas import subjects


class SqlError(Exception):
    """The query was refused, or ClickHouse failed it: the message says why."""


class SinkUnavailable(SqlError):
    """No sink answered (none running, or not within the timeout)."""


async def ask_sink(nc: NatsClient, sql: str, timeout_s: float) -> dict[str, Any]:
    """The sink's answer to ``sql``: ``{"columns", "types", "rows"}``."""
    try:
        msg = await nc.request(subjects.SQL_QUERY, orjson.dumps({"sql": sql}), timeout=timeout_s)
    except NoRespondersError:
        raise SinkUnavailable("no sink is answering queries (is it starting or restarting? see "
                              ".gateway/logs/sink.log)") from None
    except Exception as exc:  # noqa: BLE001 - a timeout or a lost connection
        raise SinkUnavailable(f"no answer from the sink within {timeout_s}s: {type(exc).__name__}") from None
    answer: dict[str, Any] = orjson.loads(msg.data)
    if "error" in answer:
        raise SqlError(str(answer["error"]))
    return answer
