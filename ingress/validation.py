"""Turning an HTTP body into a validated canonical request, or a clear 400."""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.errors import InvalidRequest
from schemas.openai import ChatCompletionRequest, EmbeddingsRequest


def parse_chat_request(raw: bytes) -> tuple[dict[str, Any], ChatCompletionRequest]:
    """The body as sent (unknown fields kept, passed through) and its validated view."""
    data = _json_object(raw)
    try:
        request = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_request(exc) from None
    return data, request


def parse_embeddings_request(raw: bytes) -> tuple[dict[str, Any], EmbeddingsRequest]:
    data = _json_object(raw)
    try:
        request = EmbeddingsRequest.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_request(exc) from None
    return data, request


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data


# pydantic puts the union member it tried into the error location (``content.str``); callers want
# the field's path only.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|[A-Z]\w*|function-.*)$")


def _to_invalid_request(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))]
    param = ".".join(loc) or None
    kind = first["type"]
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
        code = "missing_required_parameter"
    elif kind == "too_short" and param == "messages":
        message = "'messages' must contain at least one message."
        code = "empty_array"
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
        code = "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"
    more = len(exc.errors()) - 1
    if more:
        message += f" ({more} more problem{'s' if more > 1 else ''} in the request.)"
    return InvalidRequest(message, param=param, code=code)
