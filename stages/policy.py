"""Policy: who may call, which model aliases, how much input. Pure functions over the config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.config import ApiKey
from schemas.errors import AuthenticationFailed, PermissionDenied
from schemas.openai import embedding_texts, message_text


class KeyIndex:
    """Gateway keys by SHA-256 hash: a lookup, never a comparison of raw keys."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash = {key.key_sha256: key for key in keys}

    def get(self, key_hash: str | None) -> ApiKey | None:
        return self._by_hash.get(key_hash) if key_hash else None

    def __len__(self) -> int:
        return len(self._by_hash)


def authenticate(keys: KeyIndex, key_hash: str | None) -> ApiKey:
    if not key_hash:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key').",
            code="missing_api_key",
        )
    key = keys.get(key_hash)
    if key is None:
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    return key


def input_chars(body: Mapping[str, Any]) -> int:
    messages = body.get("messages") or []
    chat = sum(len(message_text(m)) for m in messages if isinstance(m, dict))
    return chat + sum(len(t) for t in embedding_texts(dict(body)))


def authorize(key: ApiKey, model: str, body: Mapping[str, Any]) -> int:
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
