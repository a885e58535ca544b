"""Event builders for the store tests."""

from __future__ import annotations

import time
from typing import Any

from schemas.events import ControlAttrs, ControlEvent, RequestCompleted, StageAttrs, StageEvent
from schemas.guardrails import Verdict
from schemas.ids import uuid7

STAGES = ("ingress", "redaction", "policy", "routing", "provider")


def stage_event(request_id: str, stage: str = "redaction", **overrides: Any) -> StageEvent:
    fields: dict[str, Any] = {
        "event_id": uuid7(),
        "request_id": request_id,
        "ts": time.time(),
        "stage": stage,
        "type": f"{stage}.done",
        "tenant": "acme",
        "api_key_id": "key_1",
        "duration_ms": 1.25,
        "attrs": StageAttrs(counts={"EMAIL_ADDRESS": 1}, profile="default"),
    }
    fields.update(overrides)
    return StageEvent(**fields)


def completed(request_id: str | None = None, **overrides: Any) -> RequestCompleted:
    now = time.time()
    fields: dict[str, Any] = {
        "event_id": uuid7(),
        "request_id": request_id or uuid7(),
        "ts": now,
        "finished_at": now + 0.25,
        "stage": "output_filter",
        "tenant": "acme",
        "api_key_id": "key_1",
        "model_requested": "gpt-4o-mini",
        "model_served": "gpt-4o-mini-2024-07-18",
        "provider": "openai",
        "status_code": 200,
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "usage_source": "provider",
        "cost_usd": "0.000123450",
        "latency_ms": 250.0,
        "ttfb_ms": 40.0,
        "provider_ms": 230.0,
        "gateway_overhead_ms": 20.0,
        "attempts": 1,
    }
    fields.update(overrides)
    return RequestCompleted(**fields)


def verdict(guardrail: str = "injection", **overrides: Any) -> Verdict:
    fields: dict[str, Any] = {
        "guardrail": guardrail,
        "kind": guardrail,
        "phase": "input",
        "outcome": "pass",
        "score": 0.0,
        "findings": {},
        "duration_ms": 0.5,
    }
    fields.update(overrides)
    return Verdict(**fields)


def control_event(**overrides: Any) -> ControlEvent:
    fields: dict[str, Any] = {
        "event_id": uuid7(),
        "ts": time.time(),
        "kind": "breaker",
        "subject": "openai/gpt-4o-mini",
        "from_state": "closed",
        "to_state": "open",
        "reason": "5 failures in 30s",
        "source": "routing-1234",
        "config_version": "v7",
        "attrs": ControlAttrs(ok=0, fail=5, window_s=30.0),
    }
    fields.update(overrides)
    return ControlEvent(**fields)


def request_batch(requests: int, **overrides: Any) -> list[StageEvent | RequestCompleted]:
    """The sink's mix: 5 stage events + 1 completed per request."""
    out: list[StageEvent | RequestCompleted] = []
    for _ in range(requests):
        rc = completed(**overrides)
        out.extend(stage_event(rc.request_id, s, tenant=rc.tenant) for s in STAGES)
        out.append(rc)
    return out
