"""Events, past tense, one per stage step, and the final per-request record.

Stages append their ``StageEvent`` to the envelope as it travels; whichever stage ends the request
publishes one ``RequestCompleted`` carrying them all (``stage_events``) on ``gw.evt.<stage>``, captured
by the file-backed GW_EVENTS stream. One stored message per request instead of one per stage (the
per-stage publishes cost ≈ 1.5 ms of p50 latency here), and a request's events land atomically with
its row: the sink's de-duplication by ``request_id`` covers both, and a run that crashed mid-chain
leaves no half set behind (its rerun records a whole one). The sink writes ``requests`` and ``events``.
Never put a raw PII value in an event: counts and entity types only, bodies only after redaction.

An event's ``attrs`` are typed (``StageAttrs``, ``ControlAttrs``): every key any producer sets, each
``UNSET`` until set, so the JSON written (the ``attrs`` column) holds exactly the keys set, a key set
to ``0``, ``""``, ``[]`` or ``None`` included. Fields are declared in the order producers set them, so
the stored text is the one the former dicts gave, byte for byte.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from msgspec import UNSET, UnsetType

from schemas.errors import ErrorInfo
from schemas.governance import usd_to_nusd
from schemas.guardrails import Verdict
from schemas.ids import uuid7
from schemas.wire import JSONObject, Message, encode

if TYPE_CHECKING:  # the envelope carries these events: a type-only import keeps the modules acyclic
    from schemas.envelope import Envelope

SCHEMA_VERSION = 1


class EventType(StrEnum):
    """What a ``StageEvent`` records (its ``type``; the ``events`` table's ``type`` column)."""

    REQUEST_REDACTED = "request.redacted"
    REQUEST_AUTHORIZED = "request.authorized"
    REQUEST_BLOCKED = "request.blocked"
    """An input guardrail blocked the request (redaction's or policy's guardrails)."""
    ROUTE_PLANNED = "route.planned"
    PROVIDER_CALLED = "provider.called"
    CACHE_HIT = "provider.cache_hit"
    """The provider stage answered from the response cache (no call)."""
    PROVIDER_FAILED = "provider.failed"
    PROVIDER_STREAM_FAILED = "provider.stream_failed"
    RESPONSE_PASSED = "response.passed"
    RESPONSE_FILTERED = "response.filtered"
    RESPONSE_BLOCKED = "response.blocked"
    RESPONSE_STREAM_FAILED = "response.stream_failed"
    RERUN_SKIPPED = "request.rerun_skipped"
    """A redelivered request not run again: its caller already had the answer, or was gone."""
    # A stage ended the request with an error (``failed``: a typed gateway error; ``crashed``: an
    # unexpected exception; ``abandoned``: the chain died too often on it). One of each per stage
    # (the provider stage's ``failed`` is ``PROVIDER_FAILED``).
    REDACTION_FAILED = "redaction.failed"
    REDACTION_CRASHED = "redaction.crashed"
    REDACTION_ABANDONED = "redaction.abandoned"
    POLICY_FAILED = "policy.failed"
    POLICY_CRASHED = "policy.crashed"
    POLICY_ABANDONED = "policy.abandoned"
    ROUTING_FAILED = "routing.failed"
    ROUTING_CRASHED = "routing.crashed"
    ROUTING_ABANDONED = "routing.abandoned"
    PROVIDER_CRASHED = "provider.crashed"
    PROVIDER_ABANDONED = "provider.abandoned"
    OUTPUT_FILTER_FAILED = "output_filter.failed"
    OUTPUT_FILTER_CRASHED = "output_filter.crashed"
    OUTPUT_FILTER_ABANDONED = "output_filter.abandoned"

    @classmethod
    def ended(cls, stage: str, how: Literal["failed", "crashed", "abandoned"]) -> EventType:
        """The event of ``stage`` ending a request with an error."""
        return cls(f"{stage}.{how}")


class CallAttempt(Message, frozen=True, kw_only=True):
    """One provider call of a request, as ``provider.called``/``provider.failed`` list them (``attempts``)."""

    target: str
    status: int
    code: str
    ms: float
    upstream_status: int | None  # what the provider answered; None: it never answered
    at: float = 0.0  # when the call started (wall clock; 0: recorded by an earlier version)


class StageAttrs(Message, frozen=True, kw_only=True, repr_omit_defaults=True):
    """What a ``StageEvent`` says beyond its columns; a field is written only when its event set it."""

    targets: list[str] | UnsetType = UNSET
    """``route.planned``: the planned target ids, in order."""
    policy_skipped: int | UnsetType = UNSET
    """``route.planned``, when the request has access rules: targets the tenant policy ruled out."""
    breaker_open: list[str] | UnsetType = UNSET
    """``route.planned``: targets skipped because their breaker is open."""
    probe: str | UnsetType = UNSET
    """``route.planned``: the first target, when the request is its half-open probe."""
    experiment: str | UnsetType = UNSET
    """``route.planned``: the experiment that chose the variant."""
    variant: str | UnsetType = UNSET
    """``route.planned``: the variant chosen."""
    provider: str | None | UnsetType = UNSET
    """``provider.called``: the provider that answered."""
    model: str | None | UnsetType = UNSET
    """``provider.called``: the model served."""
    attempts: list[CallAttempt] | UnsetType = UNSET
    """``provider.called``, ``provider.failed``: every call made, in order."""
    provider_ms: float | UnsetType = UNSET
    """``provider.called``: time spent in provider calls."""
    error_type: str | UnsetType = UNSET
    """``<stage>.failed|crashed|abandoned``, ``request.blocked``, ``response.blocked``: the error's type."""
    error_code: str | None | UnsetType = UNSET
    """Those, ``provider.failed``, ``provider.stream_failed``, ``response.stream_failed``: the error's code."""
    status: int | UnsetType = UNSET
    """``<stage>.failed|crashed|abandoned``, ``request.blocked``, ``response.blocked``, ``provider.failed``:
    the HTTP status the request ended with."""
    findings: dict[str, int] | UnsetType = UNSET
    """``response.filtered``: what the output filter found, type -> count."""
    chunks: int | UnsetType = UNSET
    """``response.filtered`` of a stream: chunks sent; ``provider.stream_failed``: pieces relayed."""
    reason: str | UnsetType = UNSET
    """``request.rerun_skipped``: ``answered`` or ``client_gone``."""
    input_chars: int | UnsetType = UNSET
    """``request.authorized``: the size of the request body."""
    guardrail_profile: str | UnsetType = UNSET
    """``request.authorized``: the guardrail profile run."""
    guardrails_triggered: list[str] | UnsetType = UNSET
    """``request.authorized``: the input guardrails that flagged or blocked."""
    counts: dict[str, int] | UnsetType = UNSET
    """``request.redacted``: values redacted, entity type -> count."""
    profile: str | UnsetType = UNSET
    """``request.redacted``: the guardrail profile resolved for the request."""
    redelivered: bool | UnsetType = UNSET
    """``request.redacted``: whether this is a rerun (JetStream delivery > 1)."""


class StageEvent(Message, frozen=True, kw_only=True, tag_field="event", tag="stage"):
    schema_version: int = SCHEMA_VERSION
    event_id: str
    request_id: str
    ts: float
    stage: str
    type: EventType
    status: Literal["ok", "error"] = "ok"
    tenant: str | None = None
    api_key_id: str | None = None
    duration_ms: float = 0.0
    delivery: int = 1
    attrs: StageAttrs = StageAttrs()


class RequestCompleted(Message, frozen=True, kw_only=True, tag_field="event", tag="completed"):
    """The final state of one request: becomes exactly one row of ``requests``."""

    schema_version: int = SCHEMA_VERSION
    event_id: str
    request_id: str
    ts: float
    finished_at: float
    stage: str
    tenant: str = ""
    api_key_id: str = ""
    user: str = ""
    tags: dict[str, str] = {}
    config_version: str = ""
    route_path: str = ""
    experiment: str = ""
    variant: str = ""
    endpoint: str = "chat.completions"
    model_requested: str = ""
    model_served: str = ""
    provider: str = ""
    stream: bool = False
    status_code: int
    error_type: str = ""
    error_code: str = ""
    error_message: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    usage_source: str = ""
    cost_usd: str | None = None
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    ttfb_added_ms: float | None = None
    """Streams: from arrival to the first content chunk sent, minus the provider's ``ttfb_ms``."""
    cache: str = ""
    """The response cache: hit, miss, refresh, bypass; '' when off (``stages/cache.py``)."""
    cache_saved_usd: str | None = None
    cache_similarity: float | None = None
    """A semantic hit: the judge's score (its probability that the answer served answers this question)."""
    provider_ms: float = 0.0
    gateway_overhead_ms: float = 0.0
    attempts: int = 0
    # targets the tenant policy ruled out (target id -> why): the row's ``policy_skips``
    skipped_targets: dict[str, str] = {}
    redactions: int = 0
    redaction_counts: dict[str, int] = {}
    output_findings: dict[str, int] = {}
    guardrail_profile: str = ""
    verdicts: list[Verdict] = []  # one row each in guardrail_verdicts
    delivery: int = 1
    stage_ms: dict[str, float] = {}
    request_body: str = ""
    response_body: str = ""
    stage_events: list[StageEvent] = []
    # governance (policy's admission, schemas/governance.py): the team, the ledger scopes that hold the
    # request's reservation (settled from this record) with the amounts held on each, the limit that
    # refused it ("" when admitted, e.g. "key.k1 budget", "team.x rpm") and notes: "unpriced_allowed"
    # (a budgeted scope let an unpriced model through), "overshoot" (the cost went past the reservation)
    team: str = ""
    scopes: list[str] = []
    hold_nusd: int = 0
    hold_tokens: int = 0
    limit_refused: str = ""
    governance_notes: list[str] = []
    # a batch line's job and custom_id (schemas/batches.py); "" for any other request
    batch_id: str = ""
    custom_id: str = ""
    # the caller's W3C ``traceparent`` (the request's spans join its trace; workers/trace_export.py)
    traceparent: str = ""

    @classmethod
    def from_envelope(
        cls,
        envelope: Envelope,
        *,
        stage: str,
        status: int,
        error: ErrorInfo | None = None,
        stored_response: JSONObject | None = None,
        tenant: str = "",
        api_key_id: str = "",
    ) -> RequestCompleted:
        """The record of a request that ``stage`` ended with ``status`` (and ``error``); ``stored_response``
        is the answer as it may be stored (after the output filter). ``tenant``/``api_key_id``: for a
        request ended before the policy stage named them (ingress knows the key)."""
        now = time.time()
        latency_ms = (now - envelope.received_at) * 1000
        usage = envelope.usage
        admission = envelope.admission
        notes: list[str] = []
        if admission is not None:
            if admission.unpriced:
                notes.append("unpriced_allowed")
            if (admission.scopes and envelope.cost_usd is not None
                    and usd_to_nusd(envelope.cost_usd) > admission.hold_nusd):
                notes.append("overshoot")
        return cls(
            event_id=uuid7(),
            request_id=envelope.request_id,
            ts=envelope.received_at,
            finished_at=now,
            stage=stage,
            tenant=envelope.tenant or tenant,
            api_key_id=envelope.api_key_id or api_key_id,
            user=envelope.user or str(envelope.body.get("user") or ""),
            tags=envelope.tags,
            config_version=envelope.config_version,
            route_path=envelope.route_path,
            experiment=envelope.experiment,
            batch_id=envelope.batch_id,
            custom_id=envelope.custom_id,
            traceparent=envelope.traceparent,
            variant=envelope.variant,
            endpoint=envelope.endpoint,
            model_requested=envelope.model_requested,
            model_served=envelope.model_served or "",
            provider=envelope.provider or "",
            stream=envelope.stream,
            status_code=status,
            error_type=error.type if error else "",
            error_code=(error.code or "") if error else "",
            error_message=error.message if error else "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_tokens=usage.cached_prompt_tokens if usage else 0,
            usage_source=usage.source if usage else "",
            cost_usd=envelope.cost_usd,
            latency_ms=round(latency_ms, 3),
            ttfb_ms=envelope.ttfb_ms,
            ttfb_added_ms=envelope.ttfb_added_ms,
            cache=envelope.cache,
            cache_saved_usd=envelope.cache_saved_usd,
            cache_similarity=envelope.cache_similarity,
            provider_ms=round(envelope.provider_ms, 3),
            gateway_overhead_ms=round(max(0.0, latency_ms - envelope.provider_ms), 3),
            attempts=envelope.attempts,
            skipped_targets=envelope.skipped_targets,
            redactions=sum(envelope.redactions.values()),
            redaction_counts=envelope.redactions,
            output_findings=envelope.output_findings,
            # every verdict the guardrails left on the way (types and counts, never values): guardrail_verdicts
            guardrail_profile=envelope.guardrail_profile,
            verdicts=envelope.verdicts,
            delivery=envelope.delivery,
            stage_ms=envelope.stage_ms,
            # Bodies land only after the redaction stage has run over them: PII never lands in clear.
            request_body=encode(envelope.body).decode() if envelope.redacted else "",
            response_body=encode(stored_response).decode() if stored_response is not None else "",
            stage_events=envelope.events,
            team=envelope.team,
            scopes=admission.scopes if admission else [],
            hold_nusd=admission.hold_nusd if admission else 0,
            hold_tokens=admission.hold_tokens if admission else 0,
            limit_refused=admission.refused if admission else "",
            governance_notes=notes,
        )


class ControlAttrs(Message, frozen=True, kw_only=True, repr_omit_defaults=True):
    """What a ``ControlEvent`` says beyond its columns; a field is written only when set."""

    ok: int | UnsetType = UNSET
    """breaker opened: calls that succeeded in the window."""
    fail: int | UnsetType = UNSET
    """breaker opened: calls that failed in the window."""
    window_s: float | UnsetType = UNSET
    """breaker opened: the window's length."""
    passed: int | UnsetType = UNSET
    """breaker closed or reopened after probes: probes that succeeded."""
    cooldown_s: float | UnsetType = UNSET
    """breaker opened, half-open, reopened: the cooldown."""
    opens: int | UnsetType = UNSET
    """breaker opened, half-open, reopened, closed: consecutive openings."""
    probes: int | UnsetType = UNSET
    """breaker half-open: probes it lets through."""
    revision: int | UnsetType = UNSET
    """every breaker event: the KV revision of the breaker's state."""
    initial: bool | UnsetType = UNSET
    """config ``activated``: the process's first config (at start)."""
    callback_errors: list[str] | UnsetType = UNSET
    """config ``activated``: the reload callbacks that raised."""
    file: str | UnsetType = UNSET
    """config ``applied`` by ``gateway config apply``: the file applied."""
    spent_usd: str | UnsetType = UNSET
    """budget ``alert``: the scope's settled spend in the period."""
    budget_usd: str | UnsetType = UNSET
    """budget ``alert``: the scope's budget."""
    alert_at: float | None | UnsetType = UNSET
    """budget ``alert``: the soft threshold (a fraction of the budget)."""
    period: str | None | UnsetType = UNSET
    """budget ``alert``: the budget period (day, month, total)."""
    audit_seq: int | UnsetType = UNSET
    """``audit_anchor``: the last seq of the audit chain."""
    audit_hash: str | UnsetType = UNSET
    """``audit_anchor``: that row's hash."""


class ControlEvent(Message, frozen=True, kw_only=True, tag_field="event", tag="control"):
    """Something that happened to the gateway rather than to one request: a circuit breaker changed
    state (``kind`` ``breaker``, ``subject`` the target id), a config version was applied or taken up
    by a worker (``kind`` ``config``, ``subject`` the version), a scope's spend crossed its soft
    threshold (``kind`` ``budget``, ``subject`` the scope, e.g. ``key.k1``; once per budget period), the
    audit chain's anchor (``kind`` ``audit_anchor``, ``subject`` its last seq, ``to_state`` that row's
    hash, ``reason`` ``periodic`` or ``shutdown``). One row of ``gateway_events``."""

    schema_version: int = SCHEMA_VERSION
    event_id: str
    ts: float
    kind: Literal["breaker", "config", "budget", "audit_anchor"]
    subject: str
    from_state: str = ""
    to_state: str = ""
    reason: str = ""
    source: str = ""  # the process that recorded it, e.g. routing-1234
    config_version: str = ""
    attrs: ControlAttrs = ControlAttrs()


Event = StageEvent | RequestCompleted | ControlEvent
"""Any event, told apart by its ``event`` tag (``wire.decode_union(data, Event)``)."""
