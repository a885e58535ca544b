"""Authenticating a caller's key against the ``KeyDirectory``: the key, or the 401 that says why not and
what to do next. Ingress (at intake) and the policy stage (again, before authorizing) both call it, so
the same key gets the same answer everywhere."""

from __future__ import annotations

from schemas.errors import AuthenticationFailed
from schemas.governance import KeyDirectory, KeyRefusal, VirtualKey

REFUSALS: dict[KeyRefusal, tuple[str, str]] = {
    "missing": ("missing_api_key",
                "Missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key')."),
    "unknown": ("invalid_api_key",
                "Incorrect API key provided. Check the key, or ask the gateway's operator for one "
                "(`gateway keys create`)."),
    "revoked": ("key_revoked",
                "This API key was revoked. Ask the gateway's operator for a new one (`gateway keys create`)."),
    "expired": ("key_expired",
                "This API key has expired. Ask the gateway's operator to extend it "
                "(`gateway keys update ID --expires ...`) or for a new one."),
    "rotated": ("key_rotated",
                "This API key was rotated and its grace period is over: use the new secret issued by "
                "`gateway keys rotate`."),
}


def refusal_error(refusal: KeyRefusal) -> AuthenticationFailed:
    code, message = REFUSALS[refusal]
    return AuthenticationFailed(message, code=code)


def authenticate(directory: KeyDirectory, key_hash: str | None, now: float) -> VirtualKey:
    """The key ``key_hash`` belongs to, valid at ``now``; ``AuthenticationFailed`` with the reason's code."""
    found = directory.lookup(key_hash, now)
    if isinstance(found, str):
        raise refusal_error(found)
    return found


def key_of(directory: KeyDirectory, key_hash: str | None) -> VirtualKey | None:
    """The key a hash belongs to whatever its state now (revoked, expired): who a record is about."""
    found = directory.lookup(key_hash, float("-inf"))
    return None if isinstance(found, str) else found
