"""Events, past tense, one per stage step, and the final per-request record.

Stages append their ``StageEvent`` to the envelope as it travels; whichever stage ends the request
publishes one ``RequestCompleted`` carrying them all (``stage_events``) on ``gw.evt.<stage>``, captured
by the file-backed GW_EVENTS stream. One stored message per request instead of one per stage (the
per-stage publishes cost ≈ 1.5 ms of p50 latency here), and a request's events land atomically with
its row: the sink's de-duplication by ``request_id`` covers both, and a run that crashed mid-chain
leaves no half set behind (its rerun records a whole one). The sink writes ``requests`` and ``events``.
Never put a raw PII value in an event: counts and entity types only, bodies only after redaction.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.guardrails import Verdict

SCHEMA_VERSION = 1


class _Evt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageEvent(_Evt):
    event: Literal["stage"] = "stage"
    schema_version: int = SCHEMA_VERSION
    event_id: str
    request_id: str
    ts: float
    stage: str
    type: str
    status: Literal["ok", "error"] = "ok"
    tenant: str | None = None
    api_key_id: str | None = None
    duration_ms: float = 0.0
    delivery: int = 1
    attrs: dict[str, Any] = Field(default_factory=dict)


class RequestCompleted(_Evt):
    """The final state of one request: becomes exactly one row of ``requests``."""

    event: Literal["completed"] = "completed"
    schema_version: int = SCHEMA_VERSION
    event_id: str
    request_id: str
    ts: float
    finished_at: float
    stage: str
    tenant: str = ""
    api_key_id: str = ""
    user: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
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
    provider_ms: float = 0.0
    gateway_overhead_ms: float = 0.0
    attempts: int = 0
    redactions: int = 0
    redaction_counts: dict[str, int] = Field(default_factory=dict)
    output_findings: dict[str, int] = Field(default_factory=dict)
    guardrail_profile: str = ""
    verdicts: list[Verdict] = Field(default_factory=list, description="one row each in guardrail_verdicts")
    delivery: int = 1
    stage_ms: dict[str, float] = Field(default_factory=dict)
    request_body: str = ""
    response_body: str = ""
    stage_events: list[StageEvent] = Field(default_factory=list)


class ControlEvent(_Evt):
    """Something that happened to the gateway rather than to one request: a circuit breaker changed
    state (``kind`` ``breaker``, ``subject`` the target id), a config version was applied or taken up
    by a worker (``kind`` ``config``, ``subject`` the version). One row of ``gateway_events``."""

    event: Literal["control"] = "control"
    schema_version: int = SCHEMA_VERSION
    event_id: str
    ts: float
    kind: Literal["breaker", "config"]
    subject: str
    from_state: str = ""
    to_state: str = ""
    reason: str = ""
    source: str = Field(default="", description="the process that recorded it, e.g. routing-1234")
    config_version: str = ""
    attrs: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[StageEvent | RequestCompleted | ControlEvent, Field(discriminator="event")]
"""Any event, told apart by its ``event`` tag (one validation instead of trying each kind in turn: a
quarter of the sink's decode cost)."""
