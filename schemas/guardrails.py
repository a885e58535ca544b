"""Guardrails as data: how one is configured, and the verdict it leaves on a request.

A guardrail is a small class (``stages/guardrails/base.py``) found by name among the entry points of
the ``llm_gateway.guardrails`` group; built-in and third-party ones register the same way. A config
names it in ``use``, gives it an ``action`` and a ``threshold``, and its own ``settings``, which the
guardrail class validates when the config is loaded (``infra/config.py``), so a typo is refused with
its path before any request sees it.

Every guardrail that runs on a request leaves one ``Verdict`` on the envelope, passes included; the
sink writes each as a row of ``guardrail_verdicts`` (never a raw value: types and counts only).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.wire import Message

Phase = Literal["input", "output"]
Action = Literal["flag", "block", "redact"]
"""What to do when a guardrail triggers: ``flag`` records it and lets the request through,
``block`` ends the request with a 400 ``content_blocked``, ``redact`` (guardrails that support it)
replaces what it found."""
Outcome = Literal["pass", "flag", "block", "redact"]
"""What a verdict records: ``pass`` (nothing triggered) or the action taken."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GuardrailSpec(_Strict):
    """One guardrail in a profile's list."""

    use: str = Field(min_length=1, description="entry-point name in the llm_gateway.guardrails group")
    name: str = Field(default="", description="how verdicts name it; defaults to `use`")
    action: Action = "flag"
    threshold: float = Field(default=0.5, ge=0, le=1, description="triggers when the score reaches it")
    settings: dict[str, Any] = Field(default_factory=dict, description="the guardrail's own options")

    @model_validator(mode="after")
    def _default_name(self) -> GuardrailSpec:
        if not self.name:
            object.__setattr__(self, "name", self.use)
        return self


class Verdict(Message, frozen=True, kw_only=True):
    """One guardrail's decision on one request."""

    guardrail: str
    kind: str  # the implementation (entry-point name), e.g. prompt_injection
    phase: Phase
    outcome: Outcome
    score: float = 0.0
    findings: dict[str, int] = {}  # finding type -> count; never values
    duration_ms: float = 0.0
