"""From an HTTP request to the envelope ingress publishes: the caller's key, the ``anthropic-version``
header, the request's own timeout, the body parsed by its surface, and the envelope itself.

A refusal on the way is recorded with whatever was read so far: ``Intake`` keeps it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from ingress.asgi import BODY_TIMEOUT_S, Receive, Scope, header, read_body
from ingress.config_view import ConfigView
from ingress.metadata import RequestMetadata, read_metadata
from ingress.surfaces import ANTHROPIC, Surface
from schemas import key_auth
from schemas.cache import directive_of
from schemas.config import GatewayConfig, hash_api_key
from schemas.envelope import Envelope
from schemas.errors import InvalidRequest
from schemas.governance import KeyDirectory, VirtualKey

_ANTHROPIC_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_anthropic_version(scope: Scope) -> None:
    """Anthropic clients send ``anthropic-version``; the SDKs always do. Absent is accepted (the
    gateway speaks one version of the API); a malformed one is refused as Anthropic would."""
    version = header(scope, b"anthropic-version")
    if version is not None and not _ANTHROPIC_VERSION.match(version):
        raise InvalidRequest(f"anthropic-version: invalid value {version!r}; expected a date such as 2023-06-01.",
                             param="anthropic-version", code="invalid_anthropic_version")


def bearer(scope: Scope) -> str | None:
    """The caller's key as sent: ``Authorization: Bearer <key>``, else ``x-api-key``."""
    raw = header(scope, b"authorization")
    token: str | None = None
    if raw is not None:
        scheme, _, value = raw.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    return token or header(scope, b"x-api-key") or None


def authenticate(scope: Scope, keys: KeyDirectory, now: float | None = None) -> tuple[str, VirtualKey]:
    """The SHA-256 hash of the caller's key and the key, if the directory has it and it is valid now;
    ``AuthenticationFailed`` with why not (missing, invalid, revoked, expired, rotated) otherwise."""
    token = bearer(scope)
    key_hash = hash_api_key(token) if token else None
    key = key_auth.authenticate(keys, key_hash, time.time() if now is None else now)
    assert key_hash is not None
    return key_hash, key


def timeout_s(scope: Scope, config: GatewayConfig) -> float:
    """The config's request timeout, or less when the caller asks for less (``x-gateway-timeout-ms``)."""
    limit = config.timeouts.request_s
    asked = header(scope, b"x-gateway-timeout-ms")
    if asked is None:
        return limit
    try:
        value = float(asked) / 1000
    except ValueError:
        raise InvalidRequest("x-gateway-timeout-ms must be a number of milliseconds.",
                             param="x-gateway-timeout-ms") from None
    if value <= 0:
        raise InvalidRequest("x-gateway-timeout-ms must be positive.", param="x-gateway-timeout-ms")
    return min(value, limit)


TRACEPARENT_MAX = 64
"""A W3C ``traceparent`` is 55 characters; anything longer is not one (schemas/tracing.py ignores it)."""


@dataclass
class Intake:
    """One request as far as ingress has read it: what a refusal is recorded with."""

    request_id: str
    received_at: float
    key_hash: str | None = None
    body: dict[str, Any] | None = None
    meta: RequestMetadata | None = None

    async def read(self, scope: Scope, receive: Receive, surface: Surface, view: ConfigView,
                   reply_to: str, keys: KeyDirectory, *, body_timeout_s: float = BODY_TIMEOUT_S) -> Envelope:
        """Authenticate, read and parse the body (within ``body_timeout_s``), and build the envelope;
        raises ``GatewayError``."""
        self.key_hash, _ = authenticate(scope, keys)
        if surface is ANTHROPIC:
            check_anthropic_version(scope)
        raw = await read_body(scope, receive, view.config.limits.max_body_bytes, body_timeout_s)
        parsed = surface.parse(raw)
        self.body = parsed.body
        self.meta = read_metadata(scope, self.body)
        deadline = self.received_at + timeout_s(scope, view.config)
        return Envelope(
            request_id=self.request_id,
            received_at=self.received_at,
            deadline=deadline,
            reply_to=reply_to,
            endpoint=surface.endpoint,
            stream=parsed.stream,
            api_key_hash=self.key_hash,
            body=self.body,
            model_requested=parsed.model,
            user=self.meta.user,
            tags=self.meta.tags,
            headers=self.meta.headers,
            traceparent=(header(scope, b"traceparent") or "")[:TRACEPARENT_MAX],
            cache_directive=directive_of(header(scope, b"x-gateway-cache"), header(scope, b"cache-control")),
        )
