"""The batch job record and its lines: OpenAI's batch object as the official SDK reads it, the job's
end states, each line's output (or error) file line, line request ids and cost totals."""

from __future__ import annotations

import uuid

import openai.types
import pytest

from schemas.batches import (
    CANCELLED_CODE,
    EXPIRED_CODE,
    TERMINAL,
    BatchError,
    BatchJob,
    LineResult,
    Status,
    line_request_id,
    not_run,
    output_line,
)
from schemas.errors import ErrorInfo
from schemas.wire import JSONObject, replace

JOB = BatchJob(id="batch_0123", tenant="acme", api_key_hash="h", endpoint="/v1/chat/completions",
               input_file_id="file-in", created_at=1_700_000_000, expires_at=1_700_086_400)
STATUSES: tuple[Status, ...] = ("validating", "failed", "in_progress", "finalizing", "completed", "expired",
                                "cancelling", "cancelled")


def test_to_openai_is_read_field_for_field_by_the_sdk() -> None:
    job = replace(JOB, status="completed", metadata={"team": "ml"}, in_progress_at=1_700_000_010,
                  finalizing_at=1_700_000_020, completed_at=1_700_000_030, total=3, dispatched=3, completed=2,
                  failed=1, output_file_id="file-out", error_file_id="file-err", cost_usd="0.125")
    batch = openai.types.Batch.model_validate(job.to_openai())
    assert (batch.id, batch.object, batch.endpoint) == ("batch_0123", "batch", "/v1/chat/completions")
    assert (batch.input_file_id, batch.completion_window, batch.status) == ("file-in", "24h", "completed")
    assert (batch.output_file_id, batch.error_file_id, batch.errors) == ("file-out", "file-err", None)
    assert (batch.created_at, batch.expires_at) == (1_700_000_000, 1_700_086_400)
    assert (batch.in_progress_at, batch.finalizing_at, batch.completed_at) == (1_700_000_010, 1_700_000_020,
                                                                                 1_700_000_030)
    assert (batch.failed_at, batch.expired_at, batch.cancelling_at, batch.cancelled_at) == (None, None, None, None)
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (3, 2, 1)
    assert batch.metadata == {"team": "ml", "gateway_cost_usd": "0.125"}
    assert (batch.model, batch.usage) == (None, None)
    assert job.metadata == {"team": "ml"}  # the job's own metadata is not changed by rendering it


def test_to_openai_errors_of_a_failed_job() -> None:
    job = replace(JOB, status="failed", failed_at=1_700_000_005, errors=[
        BatchError(code="invalid_json_line", message="Line 2 is not valid JSON", param="file", line=2),
        BatchError(code="empty_file", message="no lines")])
    batch = openai.types.Batch.model_validate(job.to_openai())
    assert (batch.status, batch.failed_at) == ("failed", 1_700_000_005)
    assert batch.errors is not None and batch.errors.object == "list" and batch.errors.data is not None
    assert [(e.code, e.message, e.param, e.line) for e in batch.errors.data] == [
        ("invalid_json_line", "Line 2 is not valid JSON", "file", 2), ("empty_file", "no lines", None, None)]
    assert batch.metadata == {"gateway_cost_usd": "0"}


@pytest.mark.parametrize("status", STATUSES)
def test_terminal_and_settled_by_status_and_callback(status: Status) -> None:
    ended = status in ("failed", "completed", "expired", "cancelled")
    assert replace(JOB, status=status).terminal is ended
    assert replace(JOB, status=status).settled is ended
    for state in ("delivered", "failed"):
        assert replace(JOB, status=status, callback_state=state).settled is ended
    assert replace(JOB, status=status, callback_state="pending").settled is False  # its callback still to send
    assert (status in TERMINAL) is ended


def test_line_request_id_is_a_deterministic_uuid_distinct_per_line_and_job() -> None:
    first = line_request_id("batch_a", 0)
    assert first == line_request_id("batch_a", 0)
    assert str(uuid.UUID(first)) == first
    ids = {line_request_id(job, line) for job in ("batch_a", "batch_b") for line in (0, 1, 10)}
    assert len(ids) == 6
    assert line_request_id("batch_a", 1) != line_request_id("batch_a1", 0)


def test_output_line_of_an_answered_line() -> None:
    rid = line_request_id("batch_a", 4)
    body: JSONObject = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    result = LineResult(line=4, custom_id="req-4", request_id=rid, status_code=200, body=body)
    assert result.ok
    assert output_line(result) == {
        "id": "batch_req_" + rid.replace("-", ""), "custom_id": "req-4",
        "response": {"status_code": 200, "request_id": rid, "body": body}, "error": None}


def test_output_line_of_a_line_the_chain_refused() -> None:
    rid = line_request_id("batch_a", 1)
    error = ErrorInfo(status_code=429, type="rate_limit_error", code="rate_limited", message="slow down",
                      param="model")
    result = LineResult(line=1, custom_id="c1", request_id=rid, status_code=429, error=error)
    assert not result.ok
    assert output_line(result) == {
        "id": "batch_req_" + rid.replace("-", ""), "custom_id": "c1",
        "response": {"status_code": 429, "request_id": rid, "body": {"error": {
            "message": "slow down", "type": "rate_limit_error", "param": "model", "code": "rate_limited"}}},
        "error": None}


@pytest.mark.parametrize(("code", "words"), [(CANCELLED_CODE, "cancelled"), (EXPIRED_CODE, "completion window")])
def test_not_run_lines_have_no_response_only_an_error(code: str, words: str) -> None:
    result = not_run("batch_a", 7, "c7", code)
    assert (result.line, result.custom_id, result.status_code) == (7, "c7", 0)
    assert result.request_id == line_request_id("batch_a", 7) and not result.ok
    assert result.error is not None and result.error.code == code and words in result.error.message
    assert result.finished_at > 0
    assert output_line(result) == {"id": "batch_req_" + result.request_id.replace("-", ""), "custom_id": "c7",
                                   "response": None, "error": {"code": code, "message": result.error.message}}


def test_ok_needs_a_2xx_and_no_error() -> None:
    assert LineResult(line=0, custom_id="a", request_id="r", status_code=204).ok
    assert not LineResult(line=0, custom_id="a", request_id="r", status_code=302).ok
