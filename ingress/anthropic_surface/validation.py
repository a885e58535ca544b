"""An Anthropic request body → a validated model, or an ``InvalidRequest`` with a clean ``param`` path
(the one mapping of ``ingress.validation``, told about this surface's own union tags)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ingress.anthropic_surface.models import TAG_PREFIX
from ingress.validation import invalid_request
from ingress.validation import validate as validate_body

_M = TypeVar("_M", bound=BaseModel)


def _surface_tag(previous: int | str | None, item: int | str) -> bool:
    """Our tagged-union discriminators, and the ``source`` kind pydantic puts after ``source``."""
    if not isinstance(item, str):
        return False
    return item.startswith(TAG_PREFIX) or (previous == "source" and item in ("base64", "url", "text"))


def validate(raw: bytes, model: type[_M]) -> tuple[dict[str, Any], _M]:
    """The JSON object as sent and its validated view, or an ``InvalidRequest`` naming the bad param."""
    return validate_body(raw, model, skip=_surface_tag)


def validate_value(data: Any, model: type[_M]) -> _M:
    """A JSON value already decoded (one request of a batch) as the model, or an ``InvalidRequest``
    naming the bad param relative to that value."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc, _surface_tag) from None
