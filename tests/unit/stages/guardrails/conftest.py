"""Helpers for the guardrail tests: request bodies and subjects."""

from __future__ import annotations

from typing import Any

from stages.guardrails.base import Subject


def chat(*messages: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    """A chat request body from (role, content) pairs."""
    body: dict[str, Any] = {"model": "m", "messages": [{"role": r, "content": c} for r, c in messages]}
    body.update(extra)
    return body


def user(text: str) -> Subject:
    return Subject(phase="input", request=chat(("system", "You are a helpful assistant."), ("user", text)))


def tool(text: str) -> Subject:
    return Subject(phase="input", request=chat(("user", "Summarise the result."), ("tool", text)))
