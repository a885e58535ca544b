"""One line of the batch engine's OpenAI output (or error) file → one line of Anthropic's results ``.jsonl``.

An engine line is ``{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
"error": {"code", "message"} | null}``. It becomes ``{"custom_id", "result": …}`` with the result:

- ``canceled`` / ``expired`` when ``error.code`` is OpenAI's ``batch_cancelled`` / ``batch_expired`` (the
  engine writes these for the lines it never ran; ``batch_canceled`` is taken too);
- ``succeeded`` with the Anthropic ``message`` (``to_messages_response``) for a 2xx response whose body is
  a ``chat.completion``;
- ``errored`` otherwise, ``{"type": "error", "error": {"type", "message"}, "request_id"}``: the error type
  from the response's status and OpenAI error type (``errors.error_type``), or, for a line with no
  response, from ``error.code`` read as a gateway error type (``api_error`` when it names none). Only the
  types the SDK's ``ErrorObject`` union knows are written: ``request_too_large`` (413) is reported as
  ``invalid_request_error``, which a batch result must use for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingress.anthropic_surface.errors import error_type
from ingress.anthropic_surface.response import to_messages_response
from schemas.errors import ErrorInfo

CANCELED_CODES = frozenset({"batch_cancelled", "batch_canceled"})
EXPIRED_CODES = frozenset({"batch_expired"})
# the error types a batch result may carry (the SDK's ``ErrorObject`` union)
RESULT_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "rate_limit_error", "timeout_error", "api_error", "overloaded_error",
})
# OpenAI error types a line without a response may name in ``error.code``, with the status they stand for
_STATUS_BY_CODE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "rate_limit_error": 429,
    "timeout_error": 504,
}


def result_line(openai_output_line: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """The Anthropic results line; ``model`` is the name the request asked for (its ``params.model``)."""
    line = openai_output_line
    return {"custom_id": str(line.get("custom_id")), "result": _result(line, model)}


def _result(line: Mapping[str, Any], model: str) -> dict[str, Any]:
    error = _mapping(line.get("error"))
    code = error.get("code")
    if code in CANCELED_CODES:
        return {"type": "canceled"}
    if code in EXPIRED_CODES:
        return {"type": "expired"}
    response = line.get("response")
    if isinstance(response, Mapping):
        return _from_response(response, model)
    message = str(error.get("message") or "The request failed without a response.")
    status = _STATUS_BY_CODE.get(str(code), 500)
    return _errored(ErrorInfo(status_code=status, type=str(code or "api_error"), code=None, message=message), None)


def _from_response(response: Mapping[str, Any], model: str) -> dict[str, Any]:
    status = response.get("status_code")
    status = status if isinstance(status, int) and not isinstance(status, bool) else 500
    body = _mapping(response.get("body"))
    request_id = response.get("request_id")
    request_id = request_id if isinstance(request_id, str) and request_id else None
    if 200 <= status < 300 and isinstance(body.get("choices"), list):
        return {"type": "succeeded", "message": to_messages_response(dict(body), model=model)}
    error = _mapping(body.get("error"))
    if 200 <= status < 300:  # a success status without a completion: the engine's fault, not the caller's
        status, message = 500, "The request succeeded but returned no chat completion."
    else:
        message = str(error.get("message") or f"The request failed with status {status}.")
    code = error.get("code")
    info = ErrorInfo(status_code=status, type=str(error.get("type") or "api_error"),
                     code=code if isinstance(code, str) else None, message=message)
    return _errored(info, request_id)


def _errored(info: ErrorInfo, request_id: str | None) -> dict[str, Any]:
    kind = error_type(info)
    if kind not in RESULT_ERROR_TYPES:
        kind = "api_error" if info.status_code >= 500 else "invalid_request_error"
    error: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": info.message}}
    if request_id:
        error["request_id"] = request_id
    return {"type": "errored", "error": error}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
