"""Sealing the placeholder map so it never travels or lands in clear (decision 3).

``seal`` encrypts the {placeholder: value} map with AES-GCM under a random 96-bit nonce and returns
URL-safe base64 text: ``v1.`` + base64url(nonce ‖ ciphertext ‖ tag), no padding. ``aad`` (for
example the request id) is authenticated but not stored: a token opened with another ``aad`` fails,
so a sealed map cannot be replayed onto another request. ``unseal`` raises ``VaultError`` for a wrong
key, a wrong ``aad``, or a malformed or tampered token, and never says which.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.errors import InternalError

_PREFIX = "v1."
_NONCE_BYTES = 12
_TAG_BYTES = 16
KEY_BYTES = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class VaultError(InternalError):
    """The sealed placeholder map could not be opened (wrong key, tampered or malformed token)."""

    default_code = "vault_error"


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
        raise VaultError("vault key must be 16, 24 or 32 bytes")
    return AESGCM(key)


def seal(mapping: dict[str, str], key: bytes, *, aad: bytes = b"") -> str:
    """Encrypt ``mapping``; a fresh nonce each call, so equal maps give different tokens."""
    plaintext = json.dumps(mapping, ensure_ascii=False, separators=(",", ":")).encode()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + _cipher(key).encrypt(nonce, plaintext, aad)
    return _PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def unseal(token: str, key: bytes, *, aad: bytes = b"") -> dict[str, str]:
    """The map ``seal`` encrypted; ``VaultError`` if the token was not sealed with this key and aad."""
    cipher = _cipher(key)
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
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise VaultError("sealed placeholder map: truncated")
    try:
        plaintext = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
    except InvalidTag as exc:
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
