"""Error bodies in Anthropic's shape."""

from __future__ import annotations

import orjson
import pytest

from ingress.anthropic_surface import error_body, error_event
from schemas.errors import (
    AuthenticationFailed,
    ContentBlocked,
    DeadlineExceeded,
    ErrorInfo,
    InternalError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (InvalidRequest("bad").info(), "invalid_request_error"),
        (ContentBlocked("blocked").info(), "invalid_request_error"),
        (AuthenticationFailed("who").info(), "authentication_error"),
        (PermissionDenied("no").info(), "permission_error"),
        (NotFound("none").info(), "not_found_error"),
        (PayloadTooLarge("big").info(), "request_too_large"),
        (RateLimited("slow").info(), "rate_limit_error"),
        (InternalError("oops").info(), "api_error"),
        (ProviderError("up").info(), "api_error"),
        (ServiceUnavailable("busy").info(), "overloaded_error"),
        (DeadlineExceeded("late").info(), "timeout_error"),
        (ErrorInfo(status_code=529, type="upstream_error", message="x"), "overloaded_error"),
        (ErrorInfo(status_code=408, type="timeout_error", message="x"), "timeout_error"),
        (ErrorInfo(status_code=422, type="weird", message="x"), "invalid_request_error"),
        (ErrorInfo(status_code=507, type="weird", message="x"), "api_error"),
    ],
)
def test_error_types(info: ErrorInfo, expected: str) -> None:
    assert error_body(info) == {"type": "error", "error": {"type": expected, "message": info.message}}


def test_request_id_and_event() -> None:
    info = RateLimited("Too many requests").info()
    assert error_body(info, request_id="req_1")["request_id"] == "req_1"
    raw = error_event(info)
    assert raw.startswith(b"event: error\ndata: ") and raw.endswith(b"\n\n")
    assert orjson.loads(raw.split(b"data: ", 1)[1]) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Too many requests"},
    }
