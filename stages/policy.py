"""Policy: which model aliases a key may use, how much input. Pure functions over the key.

Who the caller is comes from the key directory (``schemas.key_auth.authenticate``: the config file's
keys and the ``GW_KEYS`` bucket's, revoked, expired and rotated-out secrets refused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.errors import PermissionDenied
from schemas.governance import VirtualKey
from schemas.openai import embedding_texts, message_text


def input_chars(body: Mapping[str, Any]) -> int:
    messages = body.get("messages") or []
    chat = sum(len(message_text(m)) for m in messages if isinstance(m, dict))
    return chat + sum(len(t) for t in embedding_texts(dict(body)))


def authorize(key: VirtualKey, model: str, body: Mapping[str, Any]) -> int:
    """Raise ``PermissionDenied`` with the reason, or return the input size in characters."""
    if not key.allows(model):
        raise PermissionDenied(
            f"API key '{key.id}' is not allowed to use model '{model}' "
            f"(allowed: {', '.join(key.models)}).",
            param="model",
            code="model_not_allowed",
        )
    size = input_chars(body)
    if size > key.max_input_chars:
        raise PermissionDenied(
            f"Input of {size} characters exceeds the limit of {key.max_input_chars} for API key '{key.id}'.",
            param="input" if "input" in body else "messages",
            code="input_too_large",
        )
    return size
