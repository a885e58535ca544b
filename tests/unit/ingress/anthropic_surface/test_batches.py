"""Message Batches translation: the create body → engine input lines (every refusal with its param), the
OpenAI batch object → ``message_batch``, engine output lines → results lines, the list page; and each
shape read back by the ``anthropic`` SDK's own types, which must find every field and no unknown one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from ingress.anthropic_surface import parse_messages_request
from ingress.anthropic_surface.batch_create import MAX_REQUESTS
from ingress.anthropic_surface.batches import (
    batch_object,
    from_anthropic_id,
    list_page,
    parse_create,
    result_line,
    to_anthropic_id,
)
from schemas.batch_input import BatchLine
from schemas.errors import InvalidRequest, NotFound

BASE = "https://gw.example.com"
CREATED = 1_724_179_044  # 2024-08-20T18:37:24Z


def params(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **fields}


def create_body(*requests: Any) -> bytes:
    return orjson.dumps({"requests": list(requests)})


def refused(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as raised:
        parse_create(raw)
    assert raised.value.status_code == 400
    return raised.value


def no_unknown_fields(model: Any) -> None:
    """The SDK's models allow extra fields: a misspelt name would pass validation, so look for extras."""
    if isinstance(model, pydantic.BaseModel):
        assert not model.model_extra, f"{type(model).__name__} got unknown fields {model.model_extra}"
        for name in type(model).model_fields:
            no_unknown_fields(getattr(model, name))
    elif isinstance(model, list):
        for item in model:
            no_unknown_fields(item)


# ---- parse_create ------------------------------------------------------------------------------------


def test_each_request_becomes_an_openai_chat_completions_line() -> None:
    first = params(system="be brief", temperature=0.2)
    second = params(messages=[{"role": "user", "content": [{"type": "text", "text": "yo"}]}], stop_sequences=["X"])
    lines = parse_create(create_body({"custom_id": "a-1", "params": first}, {"custom_id": "B_2", "params": second}))
    assert [line.custom_id for line in lines] == ["a-1", "B_2"]
    assert all(isinstance(line, BatchLine) for line in lines)
    assert lines[0].model_dump() == {
        "custom_id": "a-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "claude-x",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "max_tokens": 64,
            "temperature": 0.2,
        },
    }
    # the same canonical body /v1/messages makes
    assert lines[1].body == parse_messages_request(orjson.dumps(second))[0]
    assert lines[1].body["stop"] == ["X"]


def test_stream_false_is_accepted_and_unknown_fields_ignored() -> None:
    raw = orjson.dumps({"requests": [{"custom_id": "x", "params": params(stream=False), "note": 1}], "extra": True})
    (line,) = parse_create(raw)
    assert "stream" not in line.body and line.body["max_tokens"] == 64


def test_longest_custom_id_is_accepted() -> None:
    (line,) = parse_create(create_body({"custom_id": "a" * 64, "params": params()}))
    assert line.custom_id == "a" * 64


def _ok(custom_id: str = "ok") -> dict[str, Any]:
    return {"custom_id": custom_id, "params": params()}


@pytest.mark.parametrize(
    ("raw", "param", "code", "says"),
    [
        (b"", None, "invalid_json", "empty"),
        (b"{nope", None, "invalid_json", "not valid JSON"),
        (b"[]", None, "invalid_json", "JSON object"),
        (b"{}", "requests", "missing_required_parameter", "'requests'"),
        (orjson.dumps({"requests": {"custom_id": "a"}}), "requests", "invalid_type", "array"),
        (create_body(), "requests", "empty_array", "at least one"),
        (create_body(_ok(), "oops"), "requests[1]", "invalid_type", "object"),
        (create_body({"params": params()}), "requests[0].custom_id", "missing_required_parameter", "custom_id"),
        (create_body({"custom_id": "a"}), "requests[0].params", "missing_required_parameter", "'requests[0].params'"),
        (create_body(_ok(), {"custom_id": "a b", "params": params()}), "requests[1].custom_id", "invalid_value",
         "'a b'"),
        (create_body({"custom_id": "", "params": params()}), "requests[0].custom_id", "invalid_value", "1 to 64"),
        (create_body({"custom_id": "a" * 65, "params": params()}), "requests[0].custom_id", "invalid_value",
         "1 to 64"),
        (create_body({"custom_id": "é", "params": params()}), "requests[0].custom_id", "invalid_value", "letters"),
        (create_body({"custom_id": 7, "params": params()}), "requests[0].custom_id", "invalid_type", "got 7"),
        (create_body(_ok("a"), _ok("b"), _ok("a")), "requests[2].custom_id", "duplicate_custom_id", "requests[0]"),
        (create_body({"custom_id": "a", "params": "hi"}), "requests[0].params", "invalid_type", "Messages request"),
        (create_body(_ok(), {"custom_id": "b", "params": {"model": "m", "messages": params()["messages"]}}),
         "requests[1].params.max_tokens", "missing_required_parameter", "'requests[1].params.max_tokens'"),
        (create_body({"custom_id": "a", "params": params(max_tokens=0)}), "requests[0].params.max_tokens",
         "invalid_value", "'requests[0].params.max_tokens'"),
        (create_body({"custom_id": "a", "params": params(messages=[{"role": "user", "content": [{"type": "x"}]}])}),
         "requests[0].params.messages.0.content.0", "invalid_value", "content block"),
        (create_body({"custom_id": "a", "params": params(stream=True)}), "requests[0].params.stream",
         "invalid_value", "streaming is not supported"),
        (create_body({"custom_id": "a", "params": params(
            tools=[{"name": "get", "input_schema": {"type": "object"}}], tool_choice={"type": "tool", "name": "put"})}),
         "requests[0].params.tool_choice.name", "invalid_value", "'requests[0].params.tool_choice.name'"),
    ],
)
def test_refusals_name_the_failing_path(raw: bytes, param: str | None, code: str, says: str) -> None:
    error = refused(raw)
    assert error.param == param
    assert error.code == code
    assert says in error.message


def test_too_many_requests() -> None:
    raw = orjson.dumps({"requests": [{}] * (MAX_REQUESTS + 1)})
    error = refused(raw)
    assert (error.param, error.code) == ("requests", "too_many_requests")
    assert str(MAX_REQUESTS) in error.message


# ---- ids ---------------------------------------------------------------------------------------------


def test_ids_map_both_ways() -> None:
    assert to_anthropic_id("batch_67ab12") == "msgbatch_67ab12"
    assert from_anthropic_id("msgbatch_67ab12") == "batch_67ab12"
    assert from_anthropic_id(to_anthropic_id("batch_0a-B_9")) == "batch_0a-B_9"


@pytest.mark.parametrize("bad", ["batch_67ab12", "msgbatch_", "msgbatch_../x", "msg_1", ""])
def test_an_id_never_issued_is_not_found(bad: str) -> None:
    with pytest.raises(NotFound) as raised:
        from_anthropic_id(bad)
    assert raised.value.status_code == 404 and raised.value.param == "message_batch_id"


@pytest.mark.parametrize("bad", ["msgbatch_1", "batch_", "file-1"])
def test_an_engine_id_without_the_batch_prefix_is_a_bug(bad: str) -> None:
    with pytest.raises(ValueError, match="not a batch engine id"):
        to_anthropic_id(bad)


# ---- batch_object ------------------------------------------------------------------------------------


def openai_batch(status: str, *, total: int = 10, completed: int = 0, failed: int = 0, **times: int) -> dict[str, Any]:
    return {
        "id": "batch_abc123",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "status": status,
        "created_at": CREATED,
        "expires_at": CREATED + 86_400,
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "metadata": None,
        **times,
    }


def sdk_batch(body: dict[str, Any]) -> MessageBatch:
    parsed = MessageBatch.model_validate(body)
    no_unknown_fields(parsed)
    return parsed


def test_an_in_progress_batch() -> None:
    body = batch_object(openai_batch("in_progress", completed=3, failed=1, in_progress_at=CREATED + 5), base_url=BASE)
    assert body == {
        "id": "msgbatch_abc123",
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {"processing": 10, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "ended_at": None,
        "created_at": "2024-08-20T18:37:24Z",
        "expires_at": "2024-08-21T18:37:24Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": None,
    }
    parsed = sdk_batch(body)
    assert parsed.created_at == datetime(2024, 8, 20, 18, 37, 24, tzinfo=UTC)
    assert parsed.processing_status == "in_progress" and parsed.results_url is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("validating", "in_progress"),
        ("in_progress", "in_progress"),
        ("finalizing", "in_progress"),
        ("cancelling", "canceling"),
        ("completed", "ended"),
        ("failed", "ended"),
        ("expired", "ended"),
        ("cancelled", "ended"),
    ],
)
def test_processing_status(status: str, expected: str) -> None:
    times = {"completed_at": CREATED + 60, "failed_at": CREATED + 60, "expired_at": CREATED + 60,
             "cancelled_at": CREATED + 60}
    body = batch_object(openai_batch(status, **times), base_url=BASE)
    assert body["processing_status"] == expected
    assert sdk_batch(body).processing_status == expected
    assert sum(body["request_counts"].values()) == 10


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("completed", {"processing": 0, "succeeded": 7, "errored": 3, "canceled": 0, "expired": 0}),
        ("cancelled", {"processing": 0, "succeeded": 4, "errored": 1, "canceled": 5, "expired": 0}),
        ("expired", {"processing": 0, "succeeded": 4, "errored": 1, "canceled": 0, "expired": 5}),
        ("failed", {"processing": 0, "succeeded": 0, "errored": 10, "canceled": 0, "expired": 0}),
        ("cancelling", {"processing": 10, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}),
    ],
)
def test_request_counts_once_ended(status: str, counts: dict[str, int]) -> None:
    done = {"completed": (7, 3), "cancelled": (4, 1), "expired": (4, 1), "failed": (0, 0), "cancelling": (4, 1)}
    completed, failed = done[status]
    body = batch_object(openai_batch(status, completed=completed, failed=failed), base_url=BASE)
    assert body["request_counts"] == counts
    assert sdk_batch(body).request_counts.model_dump() == counts


def test_an_ended_batch_has_its_end_time_and_results_url() -> None:
    body = batch_object(openai_batch("completed", completed=10, completed_at=CREATED + 90), base_url=BASE + "/")
    assert body["ended_at"] == "2024-08-20T18:38:54Z"
    assert body["results_url"] == "https://gw.example.com/v1/messages/batches/msgbatch_abc123/results"
    parsed = sdk_batch(body)
    assert parsed.ended_at == datetime(2024, 8, 20, 18, 38, 54, tzinfo=UTC)


def test_a_cancelled_batch_ends_at_its_cancelled_time_and_keeps_when_cancel_began() -> None:
    body = batch_object(openai_batch("cancelled", cancelling_at=CREATED + 10, cancelled_at=CREATED + 20),
                        base_url=BASE)
    assert body["cancel_initiated_at"] == "2024-08-20T18:37:34Z"
    assert body["ended_at"] == "2024-08-20T18:37:44Z"
    parsed = sdk_batch(body)
    assert parsed.cancel_initiated_at == datetime(2024, 8, 20, 18, 37, 34, tzinfo=UTC)


def test_expiry_defaults_to_a_day_after_creation_and_fractions_are_kept() -> None:
    batch = openai_batch("validating")
    batch["expires_at"] = None
    batch["created_at"] = CREATED + 0.25
    body = batch_object(batch, base_url=BASE)
    assert body["created_at"] == "2024-08-20T18:37:24.250000Z"
    assert body["expires_at"] == "2024-08-21T18:37:24.250000Z"
    assert sdk_batch(body).expires_at == datetime(2024, 8, 21, 18, 37, 24, 250000, tzinfo=UTC)


def test_unknown_status_or_missing_creation_time_is_a_bug() -> None:
    with pytest.raises(ValueError, match="status"):
        batch_object(openai_batch("paused"), base_url=BASE)
    batch = openai_batch("in_progress")
    del batch["created_at"]
    with pytest.raises(ValueError, match="created_at"):
        batch_object(batch, base_url=BASE)


# ---- result_line -------------------------------------------------------------------------------------


def completion(**message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9x",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-served",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", **message},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def output_line(response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "batch_req_1", "custom_id": "req-7", "response": response, "error": error}


def sdk_line(line: dict[str, Any]) -> MessageBatchIndividualResponse:
    parsed = MessageBatchIndividualResponse.model_validate(line)
    no_unknown_fields(parsed)
    return parsed


def test_a_succeeded_line_carries_the_anthropic_message() -> None:
    line = result_line(output_line({"status_code": 200, "request_id": "r1", "body": completion()}), model="claude-x")
    assert line == {
        "custom_id": "req-7",
        "result": {
            "type": "succeeded",
            "message": {
                "id": "msg_9x",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [{"type": "text", "text": "Hello!"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 3},
            },
        },
    }
    parsed = sdk_line(line)
    assert parsed.result.type == "succeeded"
    assert parsed.result.message.content[0].type == "text"
    assert parsed.result.message.usage.input_tokens == 12


def test_a_succeeded_line_with_tool_calls() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Paris"}'}}
    body = completion(content=None, tool_calls=[call])
    line = result_line(output_line({"status_code": 200, "request_id": "r1", "body": body}), model="claude-x")
    message = line["result"]["message"]
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "get", "input": {"city": "Paris"}}]
    assert message["stop_reason"] == "tool_use"
    assert sdk_line(line).result.type == "succeeded"


@pytest.mark.parametrize(
    ("status", "openai_type", "anthropic_type"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (403, "permission_error", "permission_error"),
        (404, "invalid_request_error", "not_found_error"),
        (413, "invalid_request_error", "invalid_request_error"),  # request_too_large is no batch error type
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "api_error"),
        (502, "upstream_error", "api_error"),
        (503, "api_error", "overloaded_error"),
        (504, "timeout_error", "timeout_error"),
        (418, "weird", "invalid_request_error"),
    ],
)
def test_an_error_response_is_an_errored_line(status: int, openai_type: str, anthropic_type: str) -> None:
    body = {"error": {"message": "Nope.", "type": openai_type, "param": None, "code": "x"}}
    line = result_line(output_line({"status_code": status, "request_id": "req_42", "body": body}), model="m")
    assert line == {
        "custom_id": "req-7",
        "result": {"type": "errored",
                   "error": {"type": "error", "error": {"type": anthropic_type, "message": "Nope."},
                             "request_id": "req_42"}},
    }
    parsed = sdk_line(line)
    assert parsed.result.type == "errored"
    assert parsed.result.error.error.type == anthropic_type
    assert parsed.result.error.request_id == "req_42"


def test_an_error_response_without_a_message_says_its_status() -> None:
    line = result_line(output_line({"status_code": 500, "request_id": "", "body": "oops"}), model="m")
    assert line["result"]["error"] == {"type": "error",
                                       "error": {"type": "api_error", "message": "The request failed with status 500."}}
    sdk_line(line)


def test_a_success_status_without_a_completion_is_an_api_error() -> None:
    line = result_line(output_line({"status_code": 200, "request_id": "r", "body": {"object": "list"}}), model="m")
    assert line["result"]["type"] == "errored"
    assert line["result"]["error"]["error"]["type"] == "api_error"
    assert sdk_line(line).result.type == "errored"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("batch_cancelled", "canceled"), ("batch_canceled", "canceled"), ("batch_expired", "expired")],
)
def test_lines_never_run_are_canceled_or_expired(code: str, expected: str) -> None:
    line = result_line(output_line(error={"code": code, "message": "not run"}), model="m")
    assert line == {"custom_id": "req-7", "result": {"type": expected}}
    assert sdk_line(line).result.type == expected


@pytest.mark.parametrize(
    ("code", "anthropic_type"),
    [("invalid_request_error", "invalid_request_error"), ("rate_limit_error", "rate_limit_error"),
     ("provider_error", "api_error"), (None, "api_error")],
)
def test_an_error_without_a_response(code: str | None, anthropic_type: str) -> None:
    line = result_line(output_line(error={"code": code, "message": "It broke."}), model="m")
    assert line["result"] == {"type": "errored",
                              "error": {"type": "error", "error": {"type": anthropic_type, "message": "It broke."}}}
    assert sdk_line(line).result.type == "errored"


def test_a_line_with_neither_response_nor_error_is_errored() -> None:
    line = result_line(output_line(), model="m")
    assert line["result"]["error"]["error"] == {"type": "api_error",
                                                "message": "The request failed without a response."}
    sdk_line(line)


def test_the_sdk_types_do_refuse_a_wrong_shape() -> None:
    """The round trips above can fail: the SDK's models reject a wrong result or error type."""
    with pytest.raises(pydantic.ValidationError):
        MessageBatchIndividualResponse.model_validate({"custom_id": "a", "result": {"type": "cancelled"}})
    bad_error = {"type": "error", "error": {"type": "request_too_large", "message": "x"}}
    with pytest.raises(pydantic.ValidationError):
        MessageBatchIndividualResponse.model_validate({"custom_id": "a", "result": {"type": "errored",
                                                                                    "error": bad_error}})
    with pytest.raises(AssertionError, match="unknown fields"):
        sdk_batch({**batch_object(openai_batch("completed"), base_url=BASE), "canceled_at": None})


# ---- list_page ---------------------------------------------------------------------------------------


def test_list_page() -> None:
    batches = [batch_object({**openai_batch("in_progress"), "id": f"batch_{n}"}, base_url=BASE) for n in (1, 2)]
    page = list_page(batches, has_more=True, first_id="msgbatch_1", last_id="msgbatch_2")
    assert page == {"data": batches, "has_more": True, "first_id": "msgbatch_1", "last_id": "msgbatch_2"}
    assert [sdk_batch(item).id for item in page["data"]] == ["msgbatch_1", "msgbatch_2"]
    assert list_page([], has_more=False, first_id=None, last_id=None) == {
        "data": [], "has_more": False, "first_id": None, "last_id": None}
