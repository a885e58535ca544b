"""The rows the store writes, built from events: each table's column list, and one builder per table.

Every value is checked or clamped to its column type here (UUIDs, DateTime64(3) timestamps, UInt8/16/32,
Decimal(18, 9) costs, identifier-like finding types): a malformed event raises ``ValueError`` or
``TypeError`` and the store drops it alone. Pure functions, no I/O; ``store.py`` inserts the rows.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from schemas.audit import AuditRow
from schemas.events import ControlEvent, RequestCompleted, StageEvent
from schemas.guardrails import Verdict
from schemas.wire import encode

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
    "guardrail_outcomes", "team", "reserved_usd", "limit_scopes", "limit_refused", "governance_notes",
    "policy_skips", "batch_id", "custom_id", "ttfb_added_ms", "cache", "cache_saved_usd",
    "cache_similarity",
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
AUDIT_COLUMNS = (
    "seq", "ts", "kind", "actor", "subject", "action", "detail", "entry_id", "prev_hash", "hash",
)
COMPLETED_EVENT_TYPE = "request.completed"

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFF_FFFF
_MAX_TS_MS = 10_000_000_000_000  # DateTime64(3) ends in 2299
_COST_LIMIT = Decimal(10) ** 9  # Decimal(18, 9): 9 integer digits
_COST_QUANTUM = Decimal(1).scaleb(-9)
_FINDING_TYPE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
INVALID_FINDING_TYPE = "_invalid_type"
"""Where the counts of finding types that do not look like an identifier go (the type is not stored)."""
_SEVERITY = {"pass": 0, "flag": 1, "redact": 2, "block": 3}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _clamp(value: int, high: int) -> int:
    return 0 if value < 0 else high if value > high else value


def uuid_text(value: str) -> str:
    """Validate a hyphenated UUID (4x faster than ``uuid.UUID``); clickhouse-connect encodes the str."""
    if _UUID.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a UUID")
    return value


def timestamp_ms(seconds: float) -> int:
    """Epoch seconds as DateTime64(3) milliseconds; ``ValueError`` if not finite or out of range."""
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


def _reserved(nusd: int) -> Decimal:
    """Nano-dollars as Decimal(18, 9) USD, clamped to the column."""
    return (Decimal(min(max(0, nusd), 10**18 - 1)) / 10**9).quantize(_COST_QUANTUM)


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


def event_row(ev: StageEvent, owner: RequestCompleted | None = None) -> tuple[Any, ...]:
    """``owner``: the request the event travelled with; stages that ran before the policy stage
    knew no tenant yet, and the row takes the request's so per-tenant audit sees it."""
    tenant = ev.tenant or (owner.tenant if owner else "")
    api_key_id = ev.api_key_id or (owner.api_key_id if owner else "")
    return (
        uuid_text(ev.event_id), uuid_text(ev.request_id), timestamp_ms(ev.ts), ev.stage, str(ev.type), ev.status,
        tenant, api_key_id, ev.duration_ms, _clamp(ev.delivery, _U16),
        encode(ev.attrs).decode(), _clamp(ev.schema_version, _U8),
    )


def completed_event_row(
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


def request_row(rc: RequestCompleted, event_id: str, request_id: str, ts_ms: int) -> tuple[Any, ...]:
    return (
        request_id, event_id, ts_ms, timestamp_ms(rc.finished_at), rc.tenant, rc.api_key_id, rc.user, rc.endpoint,
        rc.model_requested, rc.model_served, rc.provider, rc.stream, _clamp(rc.status_code, _U16),
        rc.error_type, rc.error_code, rc.error_message, _clamp(rc.prompt_tokens, _U32),
        _clamp(rc.completion_tokens, _U32), rc.usage_source, _cost(rc.cost_usd, rc.event_id), rc.latency_ms,
        rc.ttfb_ms, rc.provider_ms, rc.gateway_overhead_ms, _clamp(rc.attempts, _U8),
        _clamp(rc.redactions, _U16), _u16_map(rc.redaction_counts), _u16_map(rc.output_findings),
        _clamp(rc.delivery, _U16), rc.stage_ms, rc.request_body, rc.response_body, rc.stage,
        _clamp(rc.schema_version, _U8), _clamp(rc.cached_tokens, _U32), rc.tags, rc.config_version,
        rc.route_path, rc.experiment, rc.variant, rc.guardrail_profile, _outcomes(rc.verdicts),
        rc.team, _reserved(rc.hold_nusd), rc.scopes, rc.limit_refused, rc.governance_notes,
        rc.skipped_targets, rc.batch_id, rc.custom_id, rc.ttfb_added_ms, rc.cache,
        _cost(rc.cache_saved_usd, rc.event_id), rc.cache_similarity,
    )


def guardrail_verdict_rows(rc: RequestCompleted, request_id: str, ts_ms: int) -> list[tuple[Any, ...]]:
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


def gateway_event_row(ce: ControlEvent) -> tuple[Any, ...]:
    return (
        uuid_text(ce.event_id), timestamp_ms(ce.ts), ce.kind, ce.subject, ce.from_state, ce.to_state, ce.reason,
        ce.source, ce.config_version, encode(ce.attrs).decode(), _clamp(ce.schema_version, _U8),
    )


def audit_row(row: AuditRow) -> tuple[Any, ...]:
    """Stored exactly as hashed: ``ts`` is the row's milliseconds (DateTime64(3) keeps them whole)."""
    if not 0 <= row.ts_ms < _MAX_TS_MS:
        raise ValueError(f"audit row {row.seq}: timestamp {row.ts_ms} ms is out of range")
    return (row.seq, row.ts_ms, row.kind, row.actor, row.subject, row.action, row.detail, row.entry_id,
            row.prev_hash, row.hash)


def column_major(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows turned into columns, as the column-oriented insert takes them."""
    return [list(col) for col in zip(*rows, strict=True)]
