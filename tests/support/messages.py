"""Reading a wire message field by field in a test."""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import BaseModel


def to_dict(value: Any) -> Any:
    """A message as plain values, every field included (defaults too, unlike the wire), nested messages
    as dicts: for a test that wants to read one field by name."""
    if isinstance(value, msgspec.Struct):
        return {name: to_dict(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: to_dict(v) for k, v in value.items()}
    return value
