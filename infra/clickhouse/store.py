"""The ClickHouse store: the sink writes events through it, ``gateway sql`` reads through it.

One client API, clickhouse-connect, for both backends:
- ``chdb:///<dir>``: the embedded chDB engine, in this process. chDB locks ``<dir>`` to one process
  (the sink) and hosts one engine path per process at a time;
- ``http(s)://user:pass@host:port/db``: a ClickHouse server.

All methods block: async callers run them in a thread (``asyncio.to_thread``). Writes and reads use
two separate connections, each behind its own lock, so a long analyst query never stalls the sink.
The read connection's session is ``readonly = 1`` (set once, and ClickHouse refuses to lower it).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
import orjson

from infra.clickhouse.dedupe import DedupeSet
from infra.clickhouse.jsonsafe import JsonValue, json_safe_row
from infra.clickhouse.migrate import Migration, apply_migrations
from infra.clickhouse.readonly import ReadOnlyViolation, check_readonly
from schemas.errors import InvalidRequest
from schemas.events import ControlEvent, Event, RequestCompleted, StageEvent
from schemas.guardrails import Verdict

logger = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id", "request_id", "ts", "stage", "type", "status", "tenant", "api_key_id",
    "duration_ms", "delivery", "attrs", "schema_version",
)
REQUEST_COLUMNS = (
    "request_id", "event_id", "ts", "finished_at", "tenant", "api_key_id", "user", "endpoint",
    "model_requested", "model_served", "provider", "stream", "status_code", "error_type", "error_code",
    "error_message", "prompt_tokens", "completion_tokens", "usage_source", "cost_usd", "latency_ms",
    "ttfb_ms", "provider_ms", "gateway_overhead_ms", "attempts", "redactions", "redaction_counts",
    "output_findings", "delivery", "stage_ms", "request_body", "response_body", "stage", "schema_version",
    "cached_tokens", "tags", "config_version", "route_path", "experiment", "variant", "guardrail_profile",
    "guardrail_outcomes",
)
VERDICT_COLUMNS = (
    "request_id", "seq", "ts", "tenant", "api_key_id", "user", "model_requested", "route_path", "provider",
    "profile", "guardrail", "kind", "phase", "outcome", "score", "findings", "duration_ms", "status_code",
    "delivery", "schema_version",
)
GATEWAY_EVENT_COLUMNS = (
    "event_id", "ts", "kind", "subject", "from_state", "to_state", "reason", "source", "config_version",
    "attrs", "schema_version",
)
COMPLETED_EVENT_TYPE = "request.completed"

MAX_QUERY_ROWS = 1_000_000
"""Hard cap of rows a ``gateway sql`` query may return (``max_rows`` is clamped to it)."""
QUERY_TIMEOUT_S = 60
"""``max_execution_time`` of analyst queries."""

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFF_FFFF
_MAX_TS_MS = 10_000_000_000_000  # DateTime64(3) ends in 2299
_COST_LIMIT = Decimal(10) ** 9  # Decimal(18, 9): 9 integer digits
_COST_QUANTUM = Decimal(1).scaleb(-9)
_STREAMED = frozenset({"SELECT", "WITH"})
_FINDING_TYPE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
INVALID_FINDING_TYPE = "_invalid_type"
"""Where the counts of finding types that do not look like an identifier go (the type is not stored)."""
_SEVERITY = {"pass": 0, "flag": 1, "redact": 2, "block": 3}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class QueryFailed(InvalidRequest):
    """ClickHouse rejected an analyst query (syntax, unknown column, timeout...)."""

    default_code = "query_failed"


@dataclass(frozen=True, slots=True)
class WriteResult:
    events: int = 0
    """rows inserted into ``events`` (stage events + one per RequestCompleted)"""
    requests: int = 0
    """rows inserted into ``requests``"""
    duplicates: int = 0
    """RequestCompleted whose request_id was already written: no second ``requests`` row"""
    rejected: int = 0
    """malformed events dropped and logged (bad UUID or timestamp): one bad event cannot wedge a batch"""
    gateway_events: int = 0
    """rows inserted into ``gateway_events`` (one per ControlEvent)"""
    verdicts: int = 0
    """rows inserted into ``guardrail_verdicts`` (one per verdict of each new RequestCompleted)"""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[JsonValue]] = field(default_factory=list)
    truncated: bool = False
    """True when the query produced more than ``max_rows`` rows and the rest were dropped"""

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "types": self.types, "rows": self.rows, "truncated": self.truncated}


def _clamp(value: int, high: int) -> int:
    return 0 if value < 0 else high if value > high else value


def _uuid(value: str) -> str:
    """Validate a hyphenated UUID (4x faster than ``uuid.UUID``); clickhouse-connect encodes the str."""
    if _UUID.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a UUID")
    return value


def _ts_ms(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp {seconds!r} is not finite")
    ms = round(seconds * 1000)
    if not 0 <= ms < _MAX_TS_MS:
        raise ValueError(f"timestamp {seconds!r} is out of range")
    return ms


def _cost(raw: str | None, event_id: str) -> Decimal | None:
    """``None`` stays NULL (unpriced). A value that does not fit Decimal(18, 9) is stored as unpriced."""
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        logger.warning("event %s: cost_usd %r is not a decimal; stored as unpriced (NULL)", event_id, raw)
        return None
    if not value.is_finite() or abs(value) >= _COST_LIMIT:
        logger.warning("event %s: cost_usd %r does not fit Decimal(18, 9); stored as unpriced", event_id, raw)
        return None
    return value.quantize(_COST_QUANTUM)


def _u16_map(counts: dict[str, int]) -> dict[str, int]:
    return {k: _clamp(v, _U16) for k, v in counts.items()} if counts else {}


def _findings(verdict: Verdict, request_id: str) -> dict[str, int]:
    """``findings`` as stored: counts clamped to UInt16, and only identifier-like types (entity types,
    rule ids). A type with spaces, ``@`` or over 64 characters may be a matched value a guardrail leaked:
    its count goes to ``_invalid_type`` and the type itself is neither stored nor logged."""
    out: dict[str, int] = {}
    leaked = 0
    for key, count in verdict.findings.items():
        if _FINDING_TYPE.fullmatch(key) is None:
            leaked += 1
            key = INVALID_FINDING_TYPE
        out[key] = _clamp(out.get(key, 0) + count, _U16)
    if leaked:
        logger.warning("request %s: guardrail %s reported %d finding type(s) that are not identifiers; "
                       "counted as %s", request_id, verdict.guardrail, leaked, INVALID_FINDING_TYPE)
    return out


def _outcomes(verdicts: Sequence[Verdict]) -> dict[str, str]:
    """guardrail -> outcome for the ``requests`` row; the most severe when a guardrail ran twice."""
    out: dict[str, str] = {}
    for v in verdicts:
        seen = out.get(v.guardrail)
        if seen is None or _SEVERITY[v.outcome] > _SEVERITY[seen]:
            out[v.guardrail] = v.outcome
    return out


def _attrs_json(attrs: dict[str, Any]) -> str:
    if not attrs:
        return "{}"
    return orjson.dumps(attrs, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _event_row(ev: StageEvent, owner: RequestCompleted | None = None) -> tuple[Any, ...]:
    """``owner``: the request the event travelled with; stages that ran before the policy stage
    knew no tenant yet, and the row takes the request's so per-tenant audit sees it."""
    tenant = ev.tenant or (owner.tenant if owner else "")
    api_key_id = ev.api_key_id or (owner.api_key_id if owner else "")
    return (
        _uuid(ev.event_id), _uuid(ev.request_id), _ts_ms(ev.ts), ev.stage, str(ev.type), ev.status,
        tenant, api_key_id, ev.duration_ms, _clamp(ev.delivery, _U16),
        _attrs_json(ev.attrs), _clamp(ev.schema_version, _U8),
    )


def _completed_event_row(
    rc: RequestCompleted, event_id: str, request_id: str, ts_ms: int
) -> tuple[Any, ...]:
    attrs = {
        "status_code": rc.status_code,
        "model_requested": rc.model_requested,
        "model_served": rc.model_served,
        "provider": rc.provider,
        "error_code": rc.error_code,
        "attempts": rc.attempts,
        "prompt_tokens": rc.prompt_tokens,
        "completion_tokens": rc.completion_tokens,
        "cost_usd": rc.cost_usd,
    }
    return (
        event_id, request_id, ts_ms, rc.stage, COMPLETED_EVENT_TYPE,
        "ok" if rc.status_code < 400 else "error", rc.tenant, rc.api_key_id, rc.latency_ms,
        _clamp(rc.delivery, _U16), _attrs_json(attrs), _clamp(rc.schema_version, _U8),
    )


def _request_row(rc: RequestCompleted, event_id: str, request_id: str, ts_ms: int) -> tuple[Any, ...]:
    return (
        request_id, event_id, ts_ms, _ts_ms(rc.finished_at), rc.tenant, rc.api_key_id, rc.user, rc.endpoint,
        rc.model_requested, rc.model_served, rc.provider, rc.stream, _clamp(rc.status_code, _U16),
        rc.error_type, rc.error_code, rc.error_message, _clamp(rc.prompt_tokens, _U32),
        _clamp(rc.completion_tokens, _U32), rc.usage_source, _cost(rc.cost_usd, rc.event_id), rc.latency_ms,
        rc.ttfb_ms, rc.provider_ms, rc.gateway_overhead_ms, _clamp(rc.attempts, _U8),
        _clamp(rc.redactions, _U16), _u16_map(rc.redaction_counts), _u16_map(rc.output_findings),
        _clamp(rc.delivery, _U16), rc.stage_ms, rc.request_body, rc.response_body, rc.stage,
        _clamp(rc.schema_version, _U8), _clamp(rc.cached_tokens, _U32), rc.tags, rc.config_version,
        rc.route_path, rc.experiment, rc.variant, rc.guardrail_profile, _outcomes(rc.verdicts),
    )


def _verdict_rows(rc: RequestCompleted, request_id: str, ts_ms: int) -> list[tuple[Any, ...]]:
    """One row per verdict: the verdict plus the request's who/what/where, never a value."""
    status, delivery, version = _clamp(rc.status_code, _U16), _clamp(rc.delivery, _U16), _clamp(rc.schema_version, _U8)
    return [
        (
            request_id, _clamp(seq, _U16), ts_ms, rc.tenant, rc.api_key_id, rc.user, rc.model_requested,
            rc.route_path, rc.provider, rc.guardrail_profile, v.guardrail, v.kind, v.phase, v.outcome,
            v.score, _findings(v, request_id), v.duration_ms, status, delivery, version,
        )
        for seq, v in enumerate(rc.verdicts)
    ]


def _gateway_event_row(ce: ControlEvent) -> tuple[Any, ...]:
    return (
        _uuid(ce.event_id), _ts_ms(ce.ts), ce.kind, ce.subject, ce.from_state, ce.to_state, ce.reason,
        ce.source, ce.config_version, _attrs_json(ce.attrs), _clamp(ce.schema_version, _U8),
    )


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)]


class Store:
    """See the module docstring. Build it with ``open_store``."""

    def __init__(self, url: str, client: Any, *, dedupe: DedupeSet | None = None) -> None:
        self.url = url
        self.backend = "chdb" if url.startswith("chdb:") else "http"
        self.dedupe = dedupe if dedupe is not None else DedupeSet()
        self._client = client
        self._reader: Any = None
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._dedupe_warm = False
        self._closed = False
        self._insert_contexts: dict[str, Any] = {}

    # -- schema -------------------------------------------------------------------------------

    def migrate(self) -> list[Migration]:
        """Apply pending migrations (idempotent); returns those applied now."""
        with self._write_lock:
            self._insert_contexts.clear()  # column types may change
            return apply_migrations(self._client)

    # -- writes -------------------------------------------------------------------------------

    def warm_dedupe(self, since_s: float | None = None) -> int:
        """Preload the dedupe set with request ids written in the last ``since_s`` (default: its TTL)."""
        window = self.dedupe.ttl_s if since_s is None else since_s
        ids = self.recent_request_ids(window, limit=self.dedupe.max_entries)
        with self._write_lock:
            self._dedupe_warm = True
            return self.dedupe.preload(ids)

    def write(self, events: Sequence[Event]) -> WriteResult:
        """Insert a batch: at most one insert each into ``events``, ``guardrail_verdicts``, ``requests``
        and ``gateway_events``.

        A ``RequestCompleted`` is one unit with the ``stage_events`` and ``verdicts`` it carries: its
        ``requests`` row, its own ``request.completed`` event row, its stage events and one
        ``guardrail_verdicts`` row per verdict. A request id already written (a redelivery, or a second
        run of a stalled chain) skips the whole unit, so no table double-counts. ``events`` is written
        first, ``guardrail_verdicts`` second, ``requests`` third, and ids enter the dedupe set only once
        all three succeeded: a failed batch retried as a whole writes no request twice (in the rare case
        where an earlier insert succeeded and a later one failed, the retry repeats those event rows;
        repeated verdict rows collapse on merge, ``guardrail_verdicts`` being a ReplacingMergeTree).
        Standalone ``StageEvent``s are written as they are. ``ControlEvent``s go to
        ``gateway_events``, inserted last, once the request ids are in the dedupe set: a retry after
        that insert failed skips the requests already written (an event id twice in one batch is
        written once; across batches, like ``events``, a redelivery can repeat a row).
        The first write of a store preloads the dedupe set (``warm_dedupe``) if nobody did.
        """
        if not self._dedupe_warm:
            self.warm_dedupe()
        event_rows: list[tuple[Any, ...]] = []
        request_rows: list[tuple[Any, ...]] = []
        verdict_rows: list[tuple[Any, ...]] = []
        control_rows: list[tuple[Any, ...]] = []
        control_ids: set[str] = set()
        new_ids: list[str] = []
        batch_ids: set[str] = set()
        duplicates = rejected = 0
        with self._write_lock:
            dedupe = self.dedupe
            for ev in events:
                try:
                    if isinstance(ev, StageEvent):
                        event_rows.append(_event_row(ev))
                        continue
                    if isinstance(ev, ControlEvent):
                        if ev.event_id.lower() not in control_ids:
                            control_rows.append(_gateway_event_row(ev))
                            control_ids.add(ev.event_id.lower())
                        continue
                    event_id, request_id = _uuid(ev.event_id), _uuid(ev.request_id)
                    ts_ms = _ts_ms(ev.ts)
                    key = request_id.lower()
                    if key in batch_ids or key in dedupe:
                        duplicates += 1
                        continue
                    unit = [_event_row(stage, ev) for stage in ev.stage_events]
                    unit.append(_completed_event_row(ev, event_id, request_id, ts_ms))
                    verdicts = _verdict_rows(ev, request_id, ts_ms)
                    request_rows.append(_request_row(ev, event_id, request_id, ts_ms))
                    event_rows.extend(unit)
                    verdict_rows.extend(verdicts)
                    batch_ids.add(key)
                    new_ids.append(key)
                except (ValueError, TypeError) as exc:
                    rejected += 1
                    logger.warning("dropping malformed %s %s: %s", type(ev).__name__, ev.event_id, exc)
            if event_rows:
                self._insert("events", EVENT_COLUMNS, _columns(event_rows))
            if verdict_rows:
                self._insert("guardrail_verdicts", VERDICT_COLUMNS, _columns(verdict_rows))
            if request_rows:
                self._insert("requests", REQUEST_COLUMNS, _columns(request_rows))
            dedupe.add_many(new_ids)
            if control_rows:
                self._insert("gateway_events", GATEWAY_EVENT_COLUMNS, _columns(control_rows))
        return WriteResult(
            events=len(event_rows), requests=len(request_rows), duplicates=duplicates, rejected=rejected,
            gateway_events=len(control_rows), verdicts=len(verdict_rows),
        )

    def _insert(self, table: str, column_names: Sequence[str], columns: list[list[Any]]) -> None:
        """Column-oriented insert reusing a cached insert context (saves a DESCRIBE round trip)."""
        context = self._insert_contexts.pop(table, None)
        if context is None:
            context = self._client.create_insert_context(
                table, column_names=list(column_names), column_oriented=True
            )
        context.data = columns
        self._client.insert(context=context)
        self._insert_contexts[table] = context  # only a context that just worked is reused

    def recent_request_ids(self, since_s: float, *, limit: int | None = None) -> set[str]:
        """Ids of ``requests`` rows inserted in the last ``since_s`` seconds (newest first if limited).

        Filters on ``inserted_at`` and, for partition pruning, on ``ts`` a day earlier (no request
        runs for a day: the envelope deadline ends it long before).
        """
        ms = max(0, round(since_s * 1000))
        sql = (
            "SELECT toString(request_id) FROM requests "
            "WHERE inserted_at >= now64(3, 'UTC') - toIntervalMillisecond({ms:UInt64}) "
            "AND ts >= now64(3, 'UTC') - toIntervalMillisecond({ms:UInt64}) - INTERVAL 1 DAY "
            "GROUP BY request_id"
        )
        params: dict[str, Any] = {"ms": ms}
        if limit is not None:
            sql += " ORDER BY max(inserted_at) DESC LIMIT {limit:UInt64}"
            params["limit"] = max(0, limit)
        with self._write_lock:
            result = self._client.query(sql, parameters=params)
        return {str(row[0]) for row in result.result_rows}

    # -- analyst reads ------------------------------------------------------------------------

    def query_readonly(
        self, sql: str, params: dict[str, Any] | None = None, max_rows: int = 10_000
    ) -> QueryResult:
        """Run one read-only statement and return JSON-safe rows (see ``jsonsafe``).

        Raises ``ReadOnlyViolation`` (refused by the guard or by the engine's readonly mode),
        ``QueryFailed`` (ClickHouse error) or ``InvalidRequest`` (empty or unreadable input).
        """
        statement = check_readonly(sql)
        limit = max(0, min(max_rows, MAX_QUERY_ROWS))
        rows: list[list[JsonValue]] = []
        truncated = False
        with self._read_lock:
            reader = self._reader_client()
            try:
                if statement.leading_keyword in _STREAMED:
                    # stream blocks and stop reading once max_rows are in hand
                    with reader.query_row_block_stream(statement.text, parameters=params) as stream:
                        columns = [str(c) for c in stream.source.column_names]
                        types = [str(t.name) for t in stream.source.column_types]
                        for block in stream:
                            truncated = _take(rows, block, limit)
                            if truncated:
                                break
                else:  # chDB cannot stream SHOW / DESCRIBE / EXPLAIN / EXISTS; their results are small
                    result = reader.query(statement.text, parameters=params)
                    columns = [str(c) for c in result.column_names]
                    types = [str(t.name) for t in result.column_types]
                    truncated = _take(rows, result.result_rows, limit)
            except Exception as exc:
                raise _query_error(exc) from exc
        return QueryResult(columns=columns, types=types, rows=rows, truncated=truncated)

    def _reader_client(self) -> Any:
        if self._closed:
            raise RuntimeError("store is closed")
        if self._reader is None:
            # Order matters: limits first, readonly last (readonly = 1 forbids changing settings after it).
            settings = {
                "max_execution_time": QUERY_TIMEOUT_S,
                "max_result_rows": MAX_QUERY_ROWS,
                "result_overflow_mode": "break",
                "readonly": 1,
            }
            self._reader = _connect(self.url, settings=settings, tz_mode="aware")
        return self._reader

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close both connections; for chDB this releases the engine once no other client holds it."""
        if self._closed:
            return
        self._closed = True
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._write_lock:
            self._client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _take(rows: list[list[JsonValue]], block: Sequence[Sequence[Any]], limit: int) -> bool:
    """Append JSON-safe rows up to ``limit``; True if some had to be dropped."""
    room = limit - len(rows)
    rows.extend(json_safe_row(r) for r in block[:room])
    return len(block) > room


def _query_error(exc: Exception) -> Exception:
    message = str(exc).strip()
    if "(READONLY)" in message or "Code: 164" in message:
        return ReadOnlyViolation(
            "ENGINE_READONLY",
            "gateway sql is read-only: ClickHouse refused the statement in readonly mode "
            f"({message.splitlines()[0][:300]})",
        )
    return QueryFailed(f"ClickHouse could not run the query: {message[:2000]}")


def _connect(url: str, **kwargs: Any) -> Any:
    return clickhouse_connect.get_client(dsn=url, **kwargs)


def open_store(url: str, *, dedupe: DedupeSet | None = None) -> Store:
    """Connect to ``chdb:///<dir>`` (created if missing) or ``http(s)://user:pass@host:port/db``."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        if parsed.path and parsed.path != "/" and not parsed.netloc:
            Path(parsed.path).mkdir(parents=True, exist_ok=True)
    elif parsed.scheme not in ("http", "https"):
        raise ValueError(f"unsupported ClickHouse URL {url!r}: use chdb:///<dir> or http(s)://user:pass@host:port/db")
    return Store(url, _connect(url), dedupe=dedupe)
