"""The response cache's contract between ingress, the stages and the operator CLI: the caller's directive,
the answer's headers, and how a tenant and an alias are written in an entry's key (``stages/cache.py`` has
the rest)."""

from __future__ import annotations

import base64

from schemas.envelope import Reply

DIRECTIVES = ("no-cache", "no-store", "refresh")


def directive_of(x_gateway_cache: str | None, cache_control: str | None) -> str:
    """The caller's cache directive: ``x-gateway-cache`` (``no-cache``, ``no-store``, ``refresh``), else
    ``Cache-Control``'s ``no-cache`` / ``no-store``; ``''`` for none."""
    value = (x_gateway_cache or "").strip().lower()
    if value in DIRECTIVES:
        return value
    parts = {p.strip().lower() for p in (cache_control or "").split(",")}
    return "no-cache" if "no-cache" in parts else "no-store" if "no-store" in parts else ""


def key_token(value: str) -> str:
    """A key-value key token for any string (NATS keys allow ``[-/_=.a-zA-Z0-9]``; ``.`` splits tokens)."""
    return base64.b32encode(value.encode()).decode().rstrip("=").lower() or "_"


def belongs(key: str, tenant: str | None = None, alias: str | None = None) -> bool:
    """Whether an entry's key is of ``tenant`` (any when None) and ``alias`` (any when None):
    ``gateway cache purge``."""
    parts = key.split(".")
    return len(parts) == 3 and (tenant is None or parts[0] == key_token(tenant)) and (
        alias is None or parts[1] == key_token(alias))


HEADER_STATUS = {"hit": b"hit", "miss": b"miss", "refresh": b"miss", "bypass": b"bypass"}


def cache_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    """The answer's ``x-gateway-cache`` (hit, miss, bypass; none when the cache is off) and, for a hit,
    ``age`` (seconds since the answer was made, as HTTP caches say it)."""
    status = HEADER_STATUS.get(reply.cache)
    if status is None:
        return []
    headers = [(b"x-gateway-cache", status)]
    if reply.cache == "hit" and reply.cache_age_s is not None:
        headers.append((b"age", str(int(reply.cache_age_s)).encode()))
    if reply.cache == "hit" and reply.cache_similarity is not None:
        headers.append((b"x-gateway-cache-similarity", f"{reply.cache_similarity:.4f}".encode()))
    return headers
