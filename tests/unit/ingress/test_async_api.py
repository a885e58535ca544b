"""Async single requests: the ``x-gateway-async`` header, the status document of a running request, and
the finished request's answer in its surface's shape (OpenAI's, or an Anthropic message read by the
official SDK), from the output or error file line the batch engine wrote."""

from __future__ import annotations

from typing import Any

import anthropic.types
import openai.types.chat
import pytest

from ingress.async_api import rendered, status_document, wants_async
from schemas.batches import CANCELLED_CODE, BatchJob, LineResult, Status, line_request_id, not_run, output_line
from schemas.errors import ErrorInfo, InvalidRequest
from schemas.wire import JSONObject, replace

JOB = BatchJob(id="async_" + "ab" * 16, kind="async", tenant="acme", api_key_hash="h",
               endpoint="/v1/chat/completions", input_file_id="file-in", created_at=1_700_000_000,
               expires_at=1_700_086_400, surface="chat.completions", model="claude-3-5-haiku")
COMPLETION: JSONObject = {
    "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1_700_000_001, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
RATE_LIMITED = ErrorInfo(status_code=429, type="rate_limit_error", code="rate_limited", message="Slow down.")


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": [(b"content-type", b"application/json"), *headers]}


def _answered(status: int = 200) -> dict[str, Any]:
    rid = line_request_id(JOB.id, 0)
    if status == 200:
        return output_line(LineResult(line=0, custom_id="async", request_id=rid, status_code=200, body=COMPLETION))
    return output_line(LineResult(line=0, custom_id="async", request_id=rid, status_code=status, error=RATE_LIMITED))


@pytest.mark.parametrize(("value", "wanted"), [
    (b"true", True), (b"1", True), (b"yes", True), (b"TRUE", True), (b"Yes", True),
    (b"false", False), (b"0", False), (b"no", False), (b"False", False)])
def test_wants_async_reads_the_header(value: bytes, wanted: bool) -> None:
    assert wants_async(_scope((b"x-gateway-async", value))) is wanted


def test_no_header_is_not_async() -> None:
    assert wants_async(_scope()) is False


@pytest.mark.parametrize("value", [b"maybe", b"", b"2", b"on"])
def test_a_bad_header_value_is_a_400_naming_the_header(value: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wants_async(_scope((b"x-gateway-async", value)))
    assert (caught.value.status_code, caught.value.param, caught.value.code) == (400, "x-gateway-async",
                                                                                  "invalid_header")


@pytest.mark.parametrize(("status", "shown"), [
    ("validating", "queued"), ("in_progress", "in_progress"), ("finalizing", "in_progress"),
    ("cancelling", "cancelling"), ("completed", "completed"), ("cancelled", "cancelled"), ("expired", "expired"),
    ("failed", "failed")])
def test_status_document(status: Status, shown: str) -> None:
    assert status_document(replace(JOB, status=status)) == {
        "id": JOB.id, "object": "async.request", "status": shown, "created_at": 1_700_000_000,
        "request_id": line_request_id(JOB.id, 0), "url": f"/v1/async/{JOB.id}"}


def test_an_openai_answer_is_the_completion_itself() -> None:
    status, body = rendered(replace(JOB, status="completed"), _answered())
    assert (status, body) == (200, COMPLETION)
    completion = openai.types.chat.ChatCompletion.model_validate(body)
    assert completion.choices[0].message.content == "Hello there"


def test_an_anthropic_answer_is_a_message() -> None:
    status, body = rendered(replace(JOB, status="completed", surface="messages"), _answered())
    assert status == 200
    message = anthropic.types.Message.model_validate(body)
    assert (message.id, message.type, message.role) == ("msg_abc123", "message", "assistant")
    assert message.model == "claude-3-5-haiku"  # the model the client asked for, not the one that served
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hello there")]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 9, 2)


def test_an_openai_error_keeps_its_status_and_error_body() -> None:
    status, body = rendered(replace(JOB, status="completed"), _answered(429))
    assert (status, body) == (429, {"error": {"message": "Slow down.", "type": "rate_limit_error", "param": None,
                                              "code": "rate_limited"}})


def test_an_anthropic_error_is_in_anthropics_shape() -> None:
    status, body = rendered(replace(JOB, status="completed", surface="messages"), _answered(429))
    assert status == 429
    error = anthropic.types.ErrorResponse.model_validate(body)
    assert (error.type, error.error.type, error.error.message) == ("error", "rate_limit_error", "Slow down.")


def test_a_response_without_status_is_a_500() -> None:
    line = _answered()
    line["response"] = {"status_code": None, "request_id": "r", "body": None}
    assert rendered(replace(JOB, status="completed"), line) == (500, {})


def test_a_request_that_never_ran_answers_its_status_and_the_reason() -> None:
    job = replace(JOB, status="cancelled", cancelled_at=1_700_000_050)
    line = output_line(not_run(job.id, 0, "async", CANCELLED_CODE))
    status, body = rendered(job, line)
    assert status == 200
    assert body == {**status_document(job), "status": "cancelled",
                    "error": {"code": CANCELLED_CODE, "message": "The batch was cancelled before this request ran."}}
