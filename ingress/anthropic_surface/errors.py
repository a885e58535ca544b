"""Gateway errors in Anthropic's error shape, HTTP status kept.

Types by status as Anthropic documents them: 400 invalid_request_error, 401 authentication_error,
402 billing_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
500/502 api_error, 503/529 overloaded_error, 504 timeout_error. Other statuses fall back on the gateway
error type (timeouts, rate limits), then on api_error (5xx) or invalid_request_error (4xx).
"""

from __future__ import annotations

from typing import Any

from ingress.anthropic_surface.stream import encode_sse
from schemas.errors import ErrorInfo

_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_BY_TYPE = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "rate_limit_error": "rate_limit_error",
    "timeout_error": "timeout_error",
}


def error_type(info: ErrorInfo) -> str:
    if info.status_code in _BY_STATUS:
        return _BY_STATUS[info.status_code]
    if info.type in _BY_TYPE:
        return _BY_TYPE[info.type]
    return "api_error" if info.status_code >= 500 else "invalid_request_error"


def error_body(info: ErrorInfo, *, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic error body; serve it with ``info.status_code``."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(info), "message": info.message}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_event(info: ErrorInfo) -> bytes:
    """The in-band ``event: error`` that ends a stream whose HTTP status was already sent."""
    return encode_sse("error", error_body(info))
