"""``/ui``: the dashboard the gateway serves, and the JSON it reads.

The page and its script are static files (``ingress/ui/``: no build step, nothing fetched from the
internet, charts drawn as SVG by the script). The data comes from ``/ui/api/*``, answered here with the
admin key when one is configured (the page asks for it once and keeps it for the browser tab):

- ``overview``: requests, errors, tokens, cost and latency percentiles per time bucket, by tenant, model,
  provider, key or team (``ingress/ui_queries.py``), read from ClickHouse through the sink (read-only);
- ``requests``: the request log (filters, search in redacted bodies and errors);
- ``requests/{id}``: one request: its row, its stage events (the timeline), its guardrail verdicts;
- ``auth``: whether the admin key is needed (open to all: it says only that);
- ``state``: budgets and rate limits per scope (the shared ledger), breaker states (``GW_BREAKERS``), the
  latest config changes and breaker transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError

from infra.governance_metrics import governance_families
from infra.sink_query import SinkUnavailable, SqlError, ask_sink
from ingress.asgi import Receive, Scope, Send, send_error, send_json
from ingress.ui_queries import CONFIG_CHANGES, Filters, one_request, request_log, series
from schemas import subjects
from schemas.errors import GatewayError, InternalError, NotFound, ServiceUnavailable
from schemas.governance import KeyDirectory

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "index.html": "text/html; charset=utf-8"}
SQL_TIMEOUT_S = 15.0


def asset(name: str) -> bytes:
    return resources.files("ingress").joinpath("ui", name).read_bytes()


class UiApi:
    def __init__(self, nc: Callable[[], NatsClient | None], js: Callable[[], JetStreamContext | None],
                 authorize: Callable[[Scope], object], directory: Callable[[], KeyDirectory],
                 clock: Callable[[], float], key_required: Callable[[], bool]) -> None:
        self._key_required = key_required
        self._nc = nc
        self._js = js
        self._authorize = authorize
        self._directory = directory
        self._clock = clock

    async def page(self, scope: Scope, name: str, send: Send) -> None:
        if name not in ASSETS:
            await send_error(send, NotFound(f"No dashboard file {name!r}.", code="ui_file_not_found").info())
            return
        body = asset(name)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", ASSETS[name].encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"default-src 'self'; style-src 'self'; img-src 'self' data:")]})
        await send({"type": "http.response.body", "body": body})

    async def api(self, scope: Scope, receive: Receive, send: Send, what: str, request_id: str = "") -> None:
        if what == "auth":  # asked before anything else: the page shows its login instead of failing a call
            await send_json(send, 200, {"key_required": self._key_required()})
            return
        try:
            self._authorize(scope)
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if what == "overview":
                payload = await self.overview(Filters.of(query))
            elif what == "requests":
                payload = {"requests": await self.sql(request_log(Filters.of(query)))}
            elif what == "request":
                payload = await self.request(request_id)
            else:
                payload = await self.state()
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, payload)

    async def sql(self, text: str) -> list[dict[str, Any]]:
        """Rows of a read-only query, asked of the sink (the one process that opens the store)."""
        nc = self._nc()
        if nc is None or not nc.is_connected:
            raise ServiceUnavailable("The gateway's message broker is unreachable; retry shortly.",
                                     code="broker_unavailable", retry_after_s=1.0)
        try:
            answer = await ask_sink(nc, text, SQL_TIMEOUT_S)
        except SinkUnavailable as exc:
            raise ServiceUnavailable(f"The analytics store did not answer: {exc}. Retry shortly.",
                                     code="store_unavailable", retry_after_s=2.0) from None
        except SqlError as exc:
            raise InternalError(f"The analytics store refused the dashboard's query: {exc}",
                                code="query_failed") from None
        columns = answer["columns"]
        return [dict(zip(columns, row, strict=True)) for row in answer["rows"]]

    async def overview(self, f: Filters) -> dict[str, Any]:
        rows = await self.sql(series(f))
        for row in rows:  # [p50, p90, p99] in ms
            row["latency"] = [round(float(v), 1) for v in (row.get("latency") or [0, 0, 0])]
        return {"range": f.range, "group": f.group, "step": f.step, "series": rows}

    async def request(self, request_id: str) -> dict[str, Any]:
        row_sql, events_sql, verdicts_sql = one_request(request_id)
        rows, events, verdicts = await asyncio.gather(self.sql(row_sql), self.sql(events_sql),
                                                      self.sql(verdicts_sql))
        if not rows:
            raise NotFound(f"No request {request_id} in the store (yet: rows land within a second).",
                           code="request_not_found")
        for event in events:
            with contextlib.suppress(orjson.JSONDecodeError, TypeError):
                event["attrs"] = orjson.loads(event["attrs"])
        return {"request": rows[0], "events": events, "verdicts": verdicts}

    async def state(self) -> dict[str, Any]:
        js = self._js()
        if js is None:
            raise ServiceUnavailable("The gateway's message broker is unreachable; retry shortly.",
                                     code="broker_unavailable", retry_after_s=1.0)
        scopes: dict[str, dict[str, float]] = {}
        for family in await governance_families(js, self._directory(), self._clock()):
            for sample in family.samples:
                if "scope" in sample.labels:
                    scopes.setdefault(sample.labels["scope"], {})[sample.name.removeprefix("gateway_")] = sample.value
        breakers: list[dict[str, Any]] = []
        kv = await js.key_value(subjects.BUCKET_BREAKERS)
        with contextlib.suppress(NoKeysError):
            for key in sorted(await kv.keys()):
                entry = await kv.get(key)
                with contextlib.suppress(orjson.JSONDecodeError, TypeError):
                    breakers.append({"key": key, **orjson.loads(entry.value or b"{}")})
        changes = await self.sql(CONFIG_CHANGES)
        return {"scopes": [{"scope": k, **v} for k, v in sorted(scopes.items())], "breakers": breakers,
                "changes": changes}
