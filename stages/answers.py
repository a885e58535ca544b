"""A filtered answer's text for the output guardrails, their rewrites, its stored copy, and a stream's verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from schemas.guardrails import Verdict
from schemas.wire import replace
from stages.guardrails.runner import RunOutcome
from stages.redaction import conceal


def stored_answer(response: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The answer as the store (and the response cache) may keep it: filtered, with the request's
    placeholders concealed again, in its text and in its tool calls' arguments (where the values were
    restored JSON-escaped)."""
    if not mapping:
        return response
    escaped = {placeholder: json.dumps(value, ensure_ascii=False)[1:-1] for placeholder, value in mapping.items()}
    choices = []
    for choice in response.get("choices") or []:
        message = dict(choice.get("message") or {})
        if isinstance(message.get("content"), str):
            message["content"] = conceal(message["content"], mapping)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            message["tool_calls"] = [_conceal_call(call, escaped) for call in calls]
        choices.append({**choice, "message": message})
    return {**response, "choices": choices}


def _conceal_call(call: Any, escaped: dict[str, str]) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": conceal(function["arguments"], escaped)}}


def answer_text(response: dict[str, Any]) -> str:
    """The text of the first choice's message (what output guardrails check; ``response`` has all)."""
    for choice in response.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def rewrite_response(response: dict[str, Any], rewrites: list[Callable[[str], str]]) -> dict[str, Any]:
    """Every choice's text passed through the guardrails' ``redact`` rewrites, in order."""
    if not rewrites:
        return response
    choices = []
    for choice in response.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            content = message["content"]
            for rewrite in rewrites:
                content = rewrite(content)
            choice = {**choice, "message": {**message, "content": content}}
        choices.append(choice)
    return {**response, "choices": choices}


def streamed_verdicts(outcome: RunOutcome) -> list[Verdict]:
    """A stream's text is with the caller already: a redact outcome could rewrite nothing, so it is
    recorded as what it was, a flag."""
    return [replace(v, outcome="flag") if v.outcome == "redact" else v for v in outcome.verdicts]
