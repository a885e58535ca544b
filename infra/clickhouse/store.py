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
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect

from infra.clickhouse.dedupe import DedupeSet
from infra.clickhouse.jsonsafe import JsonValue, json_safe_row
from infra.clickhouse.migrate import Migration, apply_migrations
from infra.clickhouse.readonly import ReadOnlyViolation, check_readonly
from infra.clickhouse.rows import (
    AUDIT_COLUMNS,
    EVENT_COLUMNS,
    GATEWAY_EVENT_COLUMNS,
    REQUEST_COLUMNS,
    VERDICT_COLUMNS,
    audit_row,
    column_major,
    completed_event_row,
    event_row,
    gateway_event_row,
    guardrail_verdict_rows,
    request_row,
    timestamp_ms,
    uuid_text,
)
from schemas.audit import GENESIS, AuditRow
from schemas.errors import InvalidRequest
from schemas.events import ControlEvent, Event, StageEvent

logger = logging.getLogger(__name__)

MAX_QUERY_ROWS = 1_000_000
"""Hard cap of rows a ``gateway sql`` query may return (``max_rows`` is clamped to it)."""
QUERY_TIMEOUT_S = 60
"""``max_execution_time`` of analyst queries."""
_STREAMED = frozenset({"SELECT", "WITH"})


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
    written: frozenset[str] = frozenset()
    """the request ids (lower case) whose ``requests`` row this write inserted: each request once, ever"""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[JsonValue]] = field(default_factory=list)
    truncated: bool = False
    """True when the query produced more than ``max_rows`` rows and the rest were dropped"""

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "types": self.types, "rows": self.rows, "truncated": self.truncated}


@dataclass(frozen=True, slots=True)
class AuditTail:
    seq: int
    hash: str
    entry_ids: frozenset[str] = frozenset()


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
                        event_rows.append(event_row(ev))
                        continue
                    if isinstance(ev, ControlEvent):
                        if ev.event_id.lower() not in control_ids:
                            control_rows.append(gateway_event_row(ev))
                            control_ids.add(ev.event_id.lower())
                        continue
                    event_id, request_id = uuid_text(ev.event_id), uuid_text(ev.request_id)
                    ts_ms = timestamp_ms(ev.ts)
                    key = request_id.lower()
                    if key in batch_ids or key in dedupe:
                        duplicates += 1
                        continue
                    unit = [event_row(stage, ev) for stage in ev.stage_events]
                    unit.append(completed_event_row(ev, event_id, request_id, ts_ms))
                    verdicts = guardrail_verdict_rows(ev, request_id, ts_ms)
                    request_rows.append(request_row(ev, event_id, request_id, ts_ms))
                    event_rows.extend(unit)
                    verdict_rows.extend(verdicts)
                    batch_ids.add(key)
                    new_ids.append(key)
                except (ValueError, TypeError) as exc:
                    rejected += 1
                    logger.warning("dropping malformed %s %s: %s", type(ev).__name__, ev.event_id, exc)
            if event_rows:
                self._insert("events", EVENT_COLUMNS, column_major(event_rows))
            if verdict_rows:
                self._insert("guardrail_verdicts", VERDICT_COLUMNS, column_major(verdict_rows))
            if request_rows:
                self._insert("requests", REQUEST_COLUMNS, column_major(request_rows))
            dedupe.add_many(new_ids)
            if control_rows:
                self._insert("gateway_events", GATEWAY_EVENT_COLUMNS, column_major(control_rows))
        return WriteResult(
            events=len(event_rows), requests=len(request_rows), duplicates=duplicates, rejected=rejected,
            gateway_events=len(control_rows), verdicts=len(verdict_rows), written=frozenset(new_ids),
        )

    # -- the audit chain (its one writer is the sink's AuditWriter) --------------------------------

    def write_audit(self, rows: Sequence[AuditRow]) -> int:
        """Append chained rows to ``audit_log`` in one insert; returns how many."""
        if not rows:
            return 0
        with self._write_lock:
            self._insert("audit_log", AUDIT_COLUMNS, column_major([audit_row(r) for r in rows]))
        return len(rows)

    def audit_tail(self, recent: int = 10_000) -> AuditTail:
        """Where the chain ends (its last seq and hash; (0, GENESIS) when empty) and the entry ids of its
        last ``recent`` rows, so a redelivered entry is not chained twice."""
        with self._write_lock:
            last = self._client.query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").result_rows
            ids = self._client.query("SELECT entry_id FROM audit_log ORDER BY seq DESC LIMIT {n:UInt64}",
                                     parameters={"n": max(0, recent)}).result_rows
        seq, digest = (int(last[0][0]), str(last[0][1])) if last else (0, GENESIS)
        return AuditTail(seq=seq, hash=digest, entry_ids=frozenset(str(r[0]) for r in ids))

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
