"""Sealing the placeholder map so it never travels or lands in clear (decision 3).

``seal`` encrypts the {placeholder: value} map with AES-GCM under a random 96-bit nonce
(``schemas.sealing.encrypt``, the gateway's one sealing implementation) and returns URL-safe base64
text, since it travels inside the JSON envelope: ``v1.`` + base64url(nonce ‖ ciphertext ‖ tag), no
padding. ``aad`` (for example the request id) is authenticated but not stored: a token opened with
another ``aad`` fails, so a sealed map cannot be replayed onto another request. ``unseal`` raises
``VaultError`` for a wrong key, a wrong ``aad``, or a malformed or tampered token, and never says which.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from schemas import sealing
from schemas.sealing import KEY_BYTES, SealError, new_key

__all__ = ["KEY_BYTES", "VaultError", "new_key", "seal", "unseal"]

_PREFIX = "v1."
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class VaultError(SealError):
    """The sealed placeholder map could not be opened (wrong key, tampered or malformed token)."""

    default_code = "vault_error"


def _check_key(key: bytes) -> None:
    try:
        sealing.cipher(key)
    except SealError as exc:
        raise VaultError("vault key must be 16, 24 or 32 bytes") from exc


def seal(mapping: dict[str, str], key: bytes, *, aad: bytes = b"") -> str:
    """Encrypt ``mapping``; a fresh nonce each call, so equal maps give different tokens."""
    _check_key(key)
    plaintext = json.dumps(mapping, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = sealing.encrypt(plaintext, key, aad=aad)
    return _PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def unseal(token: str, key: bytes, *, aad: bytes = b"") -> dict[str, str]:
    """The map ``seal`` encrypted; ``VaultError`` if the token was not sealed with this key and aad."""
    _check_key(key)
    if not isinstance(token, str) or not token.startswith(_PREFIX):
        raise VaultError("sealed placeholder map: unknown format")
    body = token[len(_PREFIX) :]
    if not _BASE64URL.fullmatch(body):
        raise VaultError("sealed placeholder map: not base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise VaultError("sealed placeholder map: not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != body:
        raise VaultError("sealed placeholder map: not canonical base64url")
    if len(raw) < sealing.NONCE_BYTES + sealing.TAG_BYTES:
        raise VaultError("sealed placeholder map: truncated")
    try:
        plaintext = sealing.decrypt(raw, key, aad=aad)
    except SealError as exc:
        raise VaultError("sealed placeholder map: wrong key or tampered token") from exc
    try:
        mapping = json.loads(plaintext)
    except ValueError as exc:
        raise VaultError("sealed placeholder map: not a {placeholder: value} map") from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise VaultError("sealed placeholder map: not a {placeholder: value} map")
    return mapping
