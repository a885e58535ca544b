"""``gateway replay``: the logged request, read as ``gateway sql`` reads (read-only, as the operator's
NATS identity, through the sink; or ``CLICKHOUSE_URL`` directly), and whether it can be replayed.

Why through ``run_query``: the embedded store is locked to the sink's process, and going the way an
analyst goes means replay needs no permission ``gateway sql`` does not already have. The request id is
parsed as a UUID before it is put into the SQL text (the sink's query API takes no parameters), so no
caller-chosen text reaches ClickHouse.

What cannot be replayed, each with what to do instead (``ReplayRefused``):

- an id with no row (unknown, or not landed yet: the sink batches its inserts for about a second);
- a row without a body: the body column is cleared by its TTL (``BODY_TTL_DAYS`` after the request),
  and a request ended before the redaction stage (a bad key, a malformed body) is recorded without one;
- a batch line (its job, pacing and lane are the unit a batch is judged by: resubmit the job);
- an endpoint replay does not know (only ``chat.completions``, ``messages`` and ``embeddings`` exist today).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from infra.operator.sql_client import SqlError, run_query
from infra.settings import Settings

BODY_TTL_DAYS = 30
"""The ``request_body`` column's TTL (``infra/clickhouse/migrations/0001_init.sql``)."""
REPLAYABLE_ENDPOINTS = ("chat.completions", "messages", "embeddings")

_COLUMNS = (  # the store returns JSON-safe values: ids, times and the Decimal cost as text, NULL as None
    "request_id, ts, dateDiff('second', ts, now64(3, 'UTC')) AS age_s, tenant, api_key_id, user, tags, endpoint, "
    "model_requested, model_served, provider, stream, status_code, error_type, error_code, route_path, "
    "experiment, variant, config_version, attempts, cost_usd, latency_ms, prompt_tokens, completion_tokens, "
    "batch_id, request_body"
)


class ReplayRefused(Exception):
    """A request that cannot be replayed, or a step that failed; the message says what to do next."""


@dataclass(frozen=True)
class LoggedRequest:
    """One ``requests`` row, the columns replay compares and resends."""

    request_id: str
    ts: str
    age_s: int
    tenant: str
    api_key_id: str
    user: str
    endpoint: str
    model_requested: str
    model_served: str
    provider: str
    stream: bool
    status_code: int
    error_type: str
    error_code: str
    route_path: str
    experiment: str
    variant: str
    config_version: str
    attempts: int
    cost_usd: str | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    batch_id: str
    request_body: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The target that answered (``provider/model``), ``""`` when none did."""
        return f"{self.provider}/{self.model_served}" if self.provider else ""

    def body(self) -> dict[str, Any]:
        """The redacted request body as recorded (the canonical OpenAI shape, also for ``messages``)."""
        value: Any = orjson.loads(self.request_body)
        if not isinstance(value, dict):
            raise ReplayRefused(f"request {self.request_id}: its recorded body is not a JSON object; "
                                "it cannot be resent")
        return value


def parse_request_id(text: str) -> str:
    """The canonical form of a request id, or ``ReplayRefused``: only a UUID ever reaches the SQL text."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ReplayRefused(f"{text!r} is not a request id (a UUID such as the x-gateway-request-id header "
                            "or requests.request_id)") from None


def since_bound(request_id: str) -> str:
    """`` AND ts >= ...`` from the time a UUIDv7 request id carries (its first 48 bits, Unix ms), an hour
    early; ``""`` for another kind of id. The row is never older than its id (ingress makes both, a batch
    line is dispatched after its id is made), so the monthly partitions before it are skipped unread."""
    parsed = uuid.UUID(parse_request_id(request_id))
    if parsed.version != 7:
        return ""
    made_ms = parsed.int >> 80
    return f" AND ts >= fromUnixTimestamp64Milli(toInt64({max(0, made_ms - 3_600_000)}), 'UTC')"


def row_query(request_id: str) -> str:
    """The SQL reading one request's final row (``FINAL``: a redelivered request is one row)."""
    rid = parse_request_id(request_id)
    return f"SELECT {_COLUMNS} FROM requests FINAL WHERE request_id = '{rid}'{since_bound(rid)} LIMIT 1"


def plan_query(request_id: str) -> str:
    """The SQL reading the targets the routing stage planned for the request (its ``route.planned`` event)."""
    rid = parse_request_id(request_id)
    return (f"SELECT attrs FROM events WHERE request_id = '{rid}'{since_bound(rid)} "
            "AND type = 'route.planned' ORDER BY ts DESC LIMIT 1")


def logged_from_row(row: Mapping[str, Any]) -> LoggedRequest:
    """A ``LoggedRequest`` from one row of ``row_query`` (the JSON-safe values ``gateway sql`` returns)."""
    tags = row.get("tags") or {}
    return LoggedRequest(
        request_id=str(row["request_id"]), ts=str(row["ts"]), age_s=int(row.get("age_s") or 0),
        tenant=str(row["tenant"]), api_key_id=str(row["api_key_id"]), user=str(row["user"]),
        endpoint=str(row["endpoint"]), model_requested=str(row["model_requested"]),
        model_served=str(row["model_served"]), provider=str(row["provider"]), stream=bool(row["stream"]),
        status_code=int(row["status_code"]), error_type=str(row["error_type"]), error_code=str(row["error_code"]),
        route_path=str(row["route_path"]), experiment=str(row["experiment"]), variant=str(row["variant"]),
        config_version=str(row["config_version"]), attempts=int(row["attempts"]),
        cost_usd=None if row.get("cost_usd") is None else str(row["cost_usd"]),
        latency_ms=float(row["latency_ms"]), prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]), batch_id=str(row.get("batch_id") or ""),
        request_body=str(row.get("request_body") or ""),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {},
    )


def check_replayable(logged: LoggedRequest) -> None:
    """``ReplayRefused`` naming why this row cannot be resent and what to do instead."""
    rid = logged.request_id
    if logged.batch_id:
        raise ReplayRefused(f"request {rid} is a line of batch {logged.batch_id}: a batch is judged as a job (its "
                            "lane, pacing and price), so replay does not resend single lines; resubmit the job "
                            "with `gateway batch submit`, or replay an interactive request")
    if logged.endpoint not in REPLAYABLE_ENDPOINTS:
        raise ReplayRefused(f"request {rid} was a {logged.endpoint!r} request; replay resends "
                            f"{', '.join(REPLAYABLE_ENDPOINTS)} requests only")
    if not logged.request_body:
        if logged.age_s >= BODY_TTL_DAYS * 86_400:
            raise ReplayRefused(f"request {rid} is from {logged.ts}: its body was cleared by the {BODY_TTL_DAYS}-day "
                                "TTL of requests.request_body; only the row's figures are left. Pick a request "
                                f"from the last {BODY_TTL_DAYS} days")
        raise ReplayRefused(f"request {rid} has no recorded body: it ended before the redaction stage "
                            f"(status {logged.status_code} {logged.error_code or logged.error_type}), and bodies are "
                            "only recorded once redacted. There is nothing to resend; fix the cause and send "
                            "it again from the client")


async def find_logged(settings: Settings, request_id: str, timeout_s: float = 30.0) -> LoggedRequest | None:
    """The row of ``request_id``, None when there is none (``ReplayRefused`` when the store cannot be read)."""
    rows = await _rows(settings, row_query(request_id), timeout_s)
    return logged_from_row(rows[0]) if rows else None


async def fetch_logged(settings: Settings, request_id: str, timeout_s: float = 30.0) -> LoggedRequest:
    """The row of ``request_id`` (``ReplayRefused`` when there is none or the store cannot be read)."""
    logged = await find_logged(settings, request_id, timeout_s)
    if logged is None:
        raise ReplayRefused(f"no request {parse_request_id(request_id)} in the requests table: check the id (the "
                            "x-gateway-request-id header of its answer), or wait a second if it just finished "
                            "(the sink writes rows in batches); `gateway sql \"SELECT request_id, ts FROM requests "
                            "ORDER BY ts DESC LIMIT 5\"` lists the latest")
    return logged


async def fetch_old_plan(settings: Settings, request_id: str, timeout_s: float = 30.0) -> list[str]:
    """The targets routing planned for the request (first choice first); ``[]`` when not recorded."""
    rows = await _rows(settings, plan_query(request_id), timeout_s)
    if not rows:
        return []
    try:
        attrs: Any = orjson.loads(str(rows[0]["attrs"]))
    except orjson.JSONDecodeError:
        return []
    targets = attrs.get("targets") if isinstance(attrs, dict) else None
    return [str(t) for t in targets] if isinstance(targets, list) else []


async def _rows(settings: Settings, sql: str, timeout_s: float) -> list[dict[str, Any]]:
    try:
        result = await run_query(settings, sql, timeout_s=timeout_s)
    except SqlError as exc:
        raise ReplayRefused(f"cannot read the request log: {exc}") from None
    return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
