"""An Anthropic ``POST /v1/messages/batches`` body → the batch engine's OpenAI input lines, or a clear 400.

The body is ``{"requests": [{"custom_id", "params": <Messages request>}, …]}``: at least one request and at
most ``MAX_REQUESTS``; each ``custom_id`` matches ``^[a-zA-Z0-9_-]{1,64}$`` and is unique in the batch;
each ``params`` is a Messages request as ``/v1/messages`` takes it, except ``stream: true`` (Anthropic runs
batch requests without streaming). Each request becomes one line ``{"custom_id", "method": "POST",
"url": "/v1/chat/completions", "body": <canonical body>}``. The first failing request ends the parse with an
``InvalidRequest`` whose ``param`` names its path: ``requests[3].custom_id``,
``requests[3].params.messages.0.content`` (the part after ``params`` is the path ``/v1/messages`` reports).
Unknown fields, at the top and in a request, are ignored like unknown Messages fields.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ingress.anthropic_surface.models import MessagesRequest
from ingress.anthropic_surface.request import to_canonical
from ingress.anthropic_surface.validation import validate_value
from ingress.validation import json_object
from schemas.batch_input import BatchLine
from schemas.errors import InvalidRequest

MAX_REQUESTS = 100_000  # Anthropic's limit on requests in one Message Batch
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CHAT_COMPLETIONS_URL: Final = "/v1/chat/completions"


def parse_create(raw: bytes) -> list[BatchLine]:
    """The engine's input lines for a Message Batches create body, in request order."""
    requests = _requests(json_object(raw))
    first_index: dict[str, int] = {}
    lines: list[BatchLine] = []
    for index, item in enumerate(requests):
        custom_id, params = _request(item, index)
        first = first_index.setdefault(custom_id, index)
        if first != index:
            raise InvalidRequest(
                f"Invalid value for 'requests[{index}].custom_id': '{custom_id}' is already the custom_id of "
                f"requests[{first}]; each custom_id must be unique within the batch.",
                param=f"requests[{index}].custom_id",
                code="duplicate_custom_id",
            )
        body = _canonical(params, f"requests[{index}].params")
        lines.append(BatchLine(custom_id=custom_id, method="POST", url=CHAT_COMPLETIONS_URL, body=body))
    return lines


def _requests(data: dict[str, Any]) -> list[Any]:
    if "requests" not in data:
        raise InvalidRequest("Missing required parameter: 'requests'.", param="requests",
                             code="missing_required_parameter")
    requests = data["requests"]
    if not isinstance(requests, list):
        raise InvalidRequest("Invalid value for 'requests': expected an array of requests.", param="requests",
                             code="invalid_type")
    if not requests:
        raise InvalidRequest("'requests' must contain at least one request.", param="requests", code="empty_array")
    if len(requests) > MAX_REQUESTS:
        raise InvalidRequest(
            f"Invalid value for 'requests': {len(requests)} requests, over the limit of {MAX_REQUESTS} in one batch.",
            param="requests",
            code="too_many_requests",
        )
    return requests


def _request(item: Any, index: int) -> tuple[str, dict[str, Any]]:
    """The custom_id and params of ``requests[index]``, checked."""
    where = f"requests[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"Invalid value for '{where}': expected an object with 'custom_id' and 'params'.",
                             param=where, code="invalid_type")
    for field in ("custom_id", "params"):
        if field not in item:
            raise InvalidRequest(f"Missing required parameter: '{where}.{field}'.", param=f"{where}.{field}",
                                 code="missing_required_parameter")
    custom_id, params = item["custom_id"], item["params"]
    if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
        raise InvalidRequest(
            f"Invalid value for '{where}.custom_id': expected 1 to 64 characters among letters, digits, '_' and "
            f"'-', got {custom_id!r}.",
            param=f"{where}.custom_id",
            code="invalid_value" if isinstance(custom_id, str) else "invalid_type",
        )
    if not isinstance(params, dict):
        raise InvalidRequest(f"Invalid value for '{where}.params': expected a Messages request object.",
                             param=f"{where}.params", code="invalid_type")
    return custom_id, params


def _canonical(params: dict[str, Any], where: str) -> dict[str, Any]:
    """The canonical body for one request's params; an error in them is re-anchored at ``where``."""
    try:
        request = validate_value(params, MessagesRequest)
        if request.stream:
            raise InvalidRequest("Invalid value for 'stream': streaming is not supported in a message batch; "
                                 "leave 'stream' out or set it to false.", param="stream", code="invalid_value")
        return to_canonical(request)
    except InvalidRequest as error:
        raise _anchored(error, where) from None


def _anchored(error: InvalidRequest, where: str) -> InvalidRequest:
    inner = error.param
    param = f"{where}.{inner}" if inner else where
    message = error.message.replace(f"'{inner}'", f"'{param}'") if inner else f"{where}: {error.message}"
    return InvalidRequest(message, param=param, code=error.code)
