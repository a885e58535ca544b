"""An Anthropic request body → a validated model, or an ``InvalidRequest`` with a clean ``param`` path."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from ingress.anthropic_surface.models import TAG_PREFIX
from schemas.errors import InvalidRequest

_M = TypeVar("_M", bound=BaseModel)


def validate(raw: bytes, model: type[_M]) -> tuple[dict[str, Any], _M]:
    """The JSON object as sent and its validated view, or an ``InvalidRequest`` naming the bad param."""
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_request(exc) from None


# Union members pydantic puts into error locations (``content.str``, ``system.list[SystemBlock]``,
# ``source.base64``) — callers want the field path only.
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|[A-Z]\w*|function-.*)$")


def _clean_loc(loc: tuple[int | str, ...]) -> str | None:
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        tag = previous == "source" and item in ("base64", "url", "text")
        skip = isinstance(item, str) and (item.startswith(TAG_PREFIX) or bool(_UNION_MEMBER.match(item)) or tag)
        if not skip:
            parts.append(str(item))
        previous = item
    return ".".join(parts) or None


def _to_invalid_request(exc: ValidationError) -> InvalidRequest:
    errors = exc.errors()
    # The deepest location is the most specific (``content.list[…].0.text`` beats ``content.str``).
    first = max(errors, key=lambda error: len(error["loc"]))
    param = _clean_loc(tuple(first["loc"]))
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
    others = {_clean_loc(tuple(e["loc"])) for e in errors} - {param}
    more = len({o for o in others if not (param or "").startswith(f"{o}.")})
    if more:
        message += f" ({more} more problem{'s' if more > 1 else ''} in the request.)"
    return InvalidRequest(message, param=param, code=code)
