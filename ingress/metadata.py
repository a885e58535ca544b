"""Request metadata read at the edge: who the request is for, the caller's tags, and the ``x-*`` headers.

- ``user``: the ``x-gateway-user`` header, else the canonical body's ``user`` (OpenAI's field; the
  Anthropic surface maps ``metadata.user_id`` onto it), else ``""``. Recorded in ``requests.user``.
- ``tags``: the ``x-gateway-tags`` header, a JSON object of string → string (numbers and booleans are
  accepted and stringified), at most 32 entries, keys of 1–64 characters from ``[A-Za-z0-9_.-]``,
  values of at most 256 characters. Anything else is a 400 (param ``x-gateway-tags``, code
  ``invalid_tags``): a caller who tags requests for cost attribution wants to hear about a typo, not
  find untagged rows a month later. Recorded in ``requests.tags``.
- ``headers``: the request's ``x-*`` headers for conditional and sticky routing (``x-gateway-session-id``
  is the sticky-session key), never recorded: names lowercased, values cut to 256 characters, at most
  32 of them (``x-gateway-*`` first, then in arrival order; a repeated header keeps its first value).
  Credentials and headers that carry them never enter the envelope: ``x-amz-*`` (request signing),
  ``x-gateway-tags`` (already in ``tags``), and any name containing auth, token, secret, key, cookie,
  signature, password or credential (``x-api-key``, ``x-goog-api-key``, ``x-auth-token``...).

Header bytes are read as UTF-8 (ASGI hands them over raw), so a non-ASCII tag or user survives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.errors import InvalidRequest

USER_HEADER = "x-gateway-user"
TAGS_HEADER = "x-gateway-tags"
SESSION_HEADER = "x-gateway-session-id"

MAX_USER_CHARS = 256
MAX_TAGS = 32
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 256
MAX_HEADERS = 32
MAX_HEADER_VALUE_CHARS = 256

_TAG_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_SECRET_PARTS = ("auth", "token", "secret", "key", "cookie", "signature", "password", "credential")
_OWN_PREFIX = "x-gateway-"


@dataclass(frozen=True, slots=True)
class RequestMetadata:
    user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def read_metadata(scope: Mapping[str, Any], body: Mapping[str, Any]) -> RequestMetadata:
    """The metadata of one request: ``scope`` is the ASGI scope, ``body`` the canonical request.

    Raises ``InvalidRequest`` for a malformed ``x-gateway-tags`` or an over-long ``x-gateway-user``.
    """
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    return RequestMetadata(
        user=read_user(_first(raw, USER_HEADER), body),
        tags=parse_tags(_first(raw, TAGS_HEADER)),
        headers=routing_headers(raw),
    )


def read_user(header_value: str | None, body: Mapping[str, Any]) -> str:
    if header_value is not None and header_value.strip():
        user = header_value.strip()
        if len(user) > MAX_USER_CHARS:
            raise InvalidRequest(
                f"{USER_HEADER} must be at most {MAX_USER_CHARS} characters (got {len(user)}).",
                param=USER_HEADER, code="invalid_user",
            )
        return user
    value = body.get("user")
    return value if isinstance(value, str) else ""


def parse_tags(header_value: str | None) -> dict[str, str]:
    """The tags of ``x-gateway-tags`` (``{}`` when the header is absent), or ``InvalidRequest``."""
    if header_value is None:
        return {}
    try:
        data = orjson.loads(header_value)
    except orjson.JSONDecodeError:
        raise _bad_tags("it is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad_tags("it must be a JSON object")
    if len(data) > MAX_TAGS:
        raise _bad_tags(f"at most {MAX_TAGS} tags are allowed (got {len(data)})")
    tags: dict[str, str] = {}
    for key, value in data.items():
        if len(key) > MAX_TAG_KEY_CHARS or not _TAG_KEY.fullmatch(key):
            raise _bad_tags(f"tag name {key[:80]!r} must be 1-{MAX_TAG_KEY_CHARS} characters of A-Z a-z 0-9 _ . -")
        tags[key] = _tag_value(key, value)
    return tags


def _tag_value(key: str, value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        kind = "null" if value is None else "an array" if isinstance(value, list) else "an object"
        raise _bad_tags(f"tag {key!r} is {kind}; values must be strings, numbers or booleans")
    if len(text) > MAX_TAG_VALUE_CHARS:
        raise _bad_tags(f"tag {key!r} is longer than {MAX_TAG_VALUE_CHARS} characters")
    return text


def _bad_tags(why: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid {TAGS_HEADER} header: {why}. Send a JSON object of up to {MAX_TAGS} string values, "
        'e.g. {"team": "search", "feature": "autocomplete"}.',
        param=TAGS_HEADER, code="invalid_tags",
    )


def is_routing_header(name: str) -> bool:
    """Whether an ``x-*`` header (lowercase name) may travel in the envelope."""
    if not name.startswith("x-") or name == TAGS_HEADER or name.startswith("x-amz-"):
        return False
    return not any(part in name for part in _SECRET_PARTS)


def routing_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        if name not in seen and is_routing_header(name):
            seen[name] = _text(raw_value)[:MAX_HEADER_VALUE_CHARS]
    if len(seen) <= MAX_HEADERS:
        return seen
    # Our own headers (the sticky-session key among them) are never the ones dropped.
    ordered = sorted(seen, key=lambda name: not name.startswith(_OWN_PREFIX))
    return {name: seen[name] for name in ordered[:MAX_HEADERS]}


def _first(raw: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    wanted = name.encode()
    for raw_name, raw_value in raw:
        if raw_name.lower() == wanted:
            return _text(raw_value)
    return None


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
