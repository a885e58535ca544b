"""A filtered answer's text for the output guardrails, their rewrites, the copy the store keeps, and
what a stream records of redact outcomes (pure)."""

from __future__ import annotations

import copy
from typing import Any

from schemas.guardrails import Verdict
from stages.answers import answer_text, rewrite_response, stored_answer, streamed_verdicts
from stages.guardrails.runner import RunOutcome

MAPPING = {"<PERSON_1>": "Jane Doe", "<EMAIL_ADDRESS_1>": "jane@example.com"}


def response(*contents: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "model": "m", **extra, "choices": [
        {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
        for i, c in enumerate(contents)]}


def test_stored_answer_conceals_the_restored_values_again() -> None:
    answer = response("Jane Doe, write to jane@example.com", None, usage={"total_tokens": 9})
    original = copy.deepcopy(answer)
    stored = stored_answer(answer, MAPPING)
    assert [c["message"]["content"] for c in stored["choices"]] == ["<PERSON_1>, write to <EMAIL_ADDRESS_1>", None]
    assert stored["usage"] == {"total_tokens": 9} and stored["choices"][0]["finish_reason"] == "stop"
    assert answer == original  # the caller's answer is untouched


def test_stored_answer_conceals_values_in_tool_call_arguments() -> None:
    mapping = {"<PERSON_1>": 'Jane "JD" Doe'}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"to": "Jane \\"JD\\" Doe"}'}}
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}
    stored = stored_answer(answer, mapping)
    assert stored["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"to": "<PERSON_1>"}'
    assert "Jane" not in str(stored)


def test_stored_answer_without_a_map_is_the_answer() -> None:
    answer = response("Jane Doe")
    assert stored_answer(answer, {}) is answer


def test_answer_text_is_the_first_choice_with_text() -> None:
    assert answer_text(response(None, "second", "third")) == "second"
    assert answer_text(response([{"type": "text", "text": "parts"}])) == ""
    assert answer_text({"choices": ["not a choice", {"message": "nor a message"}]}) == ""
    assert answer_text({}) == ""


def test_rewrite_response_applies_every_rewrite_in_order_to_every_choice() -> None:
    answer = response("a secret plan", None, "secret")
    original = copy.deepcopy(answer)
    rewritten = rewrite_response(answer, [lambda t: t.replace("secret", "[word]"), lambda t: t.upper()])
    assert [c["message"]["content"] for c in rewritten["choices"]] == ["A [WORD] PLAN", None, "[WORD]"]
    assert rewritten["id"] == "chatcmpl-1" and rewritten["choices"][0]["finish_reason"] == "stop"
    assert answer == original


def test_rewrite_response_without_rewrites_is_the_answer() -> None:
    answer = response("a secret plan")
    assert rewrite_response(answer, []) is answer


def test_a_stream_records_redact_outcomes_as_flags() -> None:
    verdicts = [Verdict(guardrail=g, kind=g, phase="output", outcome=o, findings={"x": 1})
                for g, o in [("a", "pass"), ("b", "redact"), ("c", "block"), ("d", "flag")]]
    recorded = streamed_verdicts(RunOutcome(verdicts=verdicts))
    assert [(v.guardrail, v.outcome) for v in recorded] == [("a", "pass"), ("b", "flag"), ("c", "block"), ("d", "flag")]
    assert recorded[1].findings == {"x": 1} and verdicts[1].outcome == "redact"
    assert recorded[0] is verdicts[0]
