"""The dashboard's questions as SQL (pure: checked parameters in, read-only SQL text out).

The sink answers them (``gw.sql.query``, its read-only guard). Parameters never reach the SQL unchecked:
ranges come from a fixed table, names must look like names (``NAME``) and are quoted, free-text search is
quoted and only ever compared with ``position``. Grouping by tenant, model or provider reads the
per-minute rollup (``requests_per_minute``: fast over weeks of traffic); by key or team, the ``requests``
table itself (neither is in the rollup's key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from schemas.errors import InvalidRequest

RANGES = {"1h": (3600, 60), "24h": (86_400, 900), "7d": (7 * 86_400, 7200), "30d": (30 * 86_400, 86_400)}
"""range -> (seconds, bucket seconds)"""
GROUPS = {"tenant": "tenant", "model": "model_requested", "provider": "provider", "key": "api_key_id",
          "team": "team"}
ROLLUP_GROUPS = frozenset({"tenant", "model", "provider"})
NAME = re.compile(r"^[\w.\-:/@+]{1,128}$")
REQUEST_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
Group = Literal["tenant", "model", "provider", "key", "team"]


def quote(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Filters:
    range: str = "24h"
    group: str = "tenant"
    tenant: str = ""
    model: str = ""
    status: str = ""  # "", "ok", "error"
    q: str = ""

    @classmethod
    def of(cls, query: dict[str, str]) -> Filters:
        """The filters of a query string, each checked (``InvalidRequest`` naming the bad one)."""
        f = cls(**{k: v for k, v in query.items() if k in cls.__dataclass_fields__})
        if f.range not in RANGES:
            raise InvalidRequest(f"range must be one of {', '.join(RANGES)}.", param="range")
        if f.group not in GROUPS:
            raise InvalidRequest(f"group must be one of {', '.join(GROUPS)}.", param="group")
        for name in ("tenant", "model"):
            value = getattr(f, name)
            if value and not NAME.match(value):
                raise InvalidRequest(f"{name} is not a valid name.", param=name)
        if f.status not in ("", "ok", "error"):
            raise InvalidRequest("status must be ok or error.", param="status")
        if len(f.q) > 200:
            raise InvalidRequest("q is at most 200 characters.", param="q")
        return f

    @property
    def seconds(self) -> int:
        return RANGES[self.range][0]

    @property
    def step(self) -> int:
        return RANGES[self.range][1]

    def where(self, time_column: str) -> str:
        parts = [f"{time_column} >= now() - INTERVAL {self.seconds} SECOND"]
        if self.tenant:
            parts.append(f"tenant = {quote(self.tenant)}")
        if self.model:
            parts.append(f"model_requested = {quote(self.model)}")
        return " AND ".join(parts)


def series(f: Filters) -> str:
    """Requests, errors, tokens, cost and latency percentiles per time bucket and group."""
    column = GROUPS[f.group]
    if f.group in ROLLUP_GROUPS:
        return (
            f"SELECT toUnixTimestamp(toStartOfInterval(minute, INTERVAL {f.step} SECOND)) AS t, {column} AS g, "
            "countMerge(requests) AS requests, sumMerge(errors) AS errors, "
            "sumMerge(prompt_tokens) + sumMerge(completion_tokens) AS tokens, "
            "toFloat64(ifNull(sumMerge(cost_usd), 0)) AS cost, "
            "quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms) AS latency "
            f"FROM requests_per_minute WHERE {f.where('minute')} GROUP BY t, g ORDER BY t, g")
    return (
        f"SELECT toUnixTimestamp(toStartOfInterval(ts, INTERVAL {f.step} SECOND)) AS t, {column} AS g, "
        "count() AS requests, countIf(status_code >= 400) AS errors, "
        "sum(prompt_tokens + completion_tokens) AS tokens, toFloat64(ifNull(sum(cost_usd), 0)) AS cost, "
        "quantilesTDigest(0.5, 0.9, 0.99)(latency_ms) AS latency "
        f"FROM requests FINAL WHERE {f.where('ts')} GROUP BY t, g ORDER BY t, g")


def request_log(f: Filters, limit: int = 100) -> str:
    """The newest requests matching the filters (redacted bodies, cut)."""
    where = f.where("ts")
    if f.status == "ok":
        where += " AND status_code < 400"
    elif f.status == "error":
        where += " AND status_code >= 400"
    if f.q:
        needle = quote(f.q)
        where += (f" AND (position(request_body, {needle}) > 0 OR position(response_body, {needle}) > 0 "
                  f"OR position(error_message, {needle}) > 0 OR toString(request_id) = {needle})")
    return ("SELECT toString(request_id) AS id, toUnixTimestamp64Milli(ts) AS ts, tenant, api_key_id AS key, "
            "model_requested AS model, provider, status_code AS status, round(latency_ms, 1) AS latency_ms, "
            "toFloat64(ifNull(cost_usd, 0)) AS cost, error_code, substring(request_body, 1, 240) AS body "
            f"FROM requests FINAL WHERE {where} ORDER BY ts DESC LIMIT {int(limit)}")


def one_request(request_id: str) -> tuple[str, str, str]:
    """(its row, its stage events, its guardrail verdicts)."""
    if not REQUEST_ID.match(request_id):
        raise InvalidRequest("Not a request id.", param="id")
    rid = quote(request_id.lower())
    return (f"SELECT * EXCEPT (inserted_at) FROM requests FINAL WHERE request_id = {rid} LIMIT 1",
            "SELECT toUnixTimestamp64Milli(ts) AS ts, stage, type, status, duration_ms, attrs "
            f"FROM events WHERE request_id = {rid} ORDER BY ts",
            f"SELECT guardrail, phase, outcome, score FROM guardrail_verdicts FINAL WHERE request_id = {rid}")


CONFIG_CHANGES = ("SELECT toUnixTimestamp64Milli(ts) AS ts, kind, subject, from_state, to_state, reason, source "
                  "FROM gateway_events ORDER BY ts DESC LIMIT 20")
