"""Turning an HTTP body into a validated canonical request, or a clear 400."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.errors import InvalidRequest
from schemas.openai import ChatCompletionRequest, EmbeddingsRequest

_M = TypeVar("_M", bound=BaseModel)
# The deepest nesting of arrays and objects a body may have: the chain re-encodes bodies with orjson, whose
# limit is 255 levels (a deeper body failed in the provider stage with a 500); structured-output schemas
# need far fewer.
MAX_JSON_DEPTH = 64
SkipLoc = Callable[[int | str | None, int | str], bool]


def parse_chat_request(raw: bytes) -> tuple[dict[str, Any], ChatCompletionRequest]:
    """The body as sent (unknown fields kept, passed through) and its validated view."""
    return validate(raw, ChatCompletionRequest)


def parse_embeddings_request(raw: bytes) -> tuple[dict[str, Any], EmbeddingsRequest]:
    return validate(raw, EmbeddingsRequest)


def validate(raw: bytes, model: type[_M], *, skip: SkipLoc | None = None) -> tuple[dict[str, Any], _M]:
    """The JSON object as sent and its validated view, or an ``InvalidRequest`` naming the bad param;
    ``skip(previous, item)`` drops a surface's own tags from error locations."""
    data = json_object(raw)
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc, skip) from None


def json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    # fewer brackets than the limit cannot nest deeper than it: most bodies skip the walk
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and not within_depth(data, MAX_JSON_DEPTH):
        raise InvalidRequest(f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
                             code="json_too_deep")
    return data


def within_depth(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects at most ``limit`` levels deep (itself the first)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


# pydantic puts the union member it tried into the error location (``content.str``,
# ``system.list[SystemBlock]``); callers want the field's path only.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|[A-Z]\w*|function-.*)$")


def clean_loc(loc: tuple[int | str, ...], skip: SkipLoc | None = None) -> str | None:
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        tag = isinstance(item, str) and bool(_UNION_TAG.match(item))
        if not tag and not (skip is not None and skip(previous, item)):
            parts.append(str(item))
        previous = item
    return ".".join(parts) or None


def invalid_request(exc: ValidationError, skip: SkipLoc | None = None) -> InvalidRequest:
    errors = exc.errors()
    # The deepest location is the most specific (``content.list[…].0.text`` beats ``content.str``).
    first = max(errors, key=lambda error: len(error["loc"]))
    param = clean_loc(tuple(first["loc"]), skip)
    kind = first["type"]
    if kind == "missing":
        message, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    elif kind == "too_short" and param == "messages":
        message, code = "'messages' must contain at least one message.", "empty_array"
    else:
        detail = str(first["msg"]).removeprefix("Value error, ")
        message = f"Invalid value for '{param}': {detail}."
        code = "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"
    # Other union members failing at an enclosing path (``content`` is not a string either) are not news.
    others = {clean_loc(tuple(e["loc"]), skip) for e in errors} - {param}
    more = len({o for o in others if not (param or "").startswith(f"{o}.")})
    if more:
        message += f" ({more} more problem{'s' if more > 1 else ''} in the request.)"
    return InvalidRequest(message, param=param, code=code)
