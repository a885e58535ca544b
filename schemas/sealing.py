"""Sealing bytes with AES-GCM: the one implementation the gateway seals with.

Two layers over ``cryptography``'s AES-GCM:

- ``encrypt``/``decrypt``: ``nonce ‖ ciphertext ‖ tag``, a fresh random 96-bit nonce per call. ``aad`` is
  authenticated but not stored: bytes sealed with one ``aad`` (a request id) do not open with another,
  so a sealed payload cannot be replayed under another id. The placeholder map's text token
  (``stages/vault.py``) is built on this layer.
- ``seal``/``open_sealed``: the same with a version byte in front (``VERSION``, ``0x01``), binary, for
  payloads that travel as bytes (the raw request in ``GW_REQ``, ``schemas/sealed_request.py``). A
  reader refuses any other first byte, so the format can change under a new version; JSON never starts
  with ``0x01``, so an unsealed message is refused too.

Any failure (a wrong key, a wrong ``aad``, tampered, truncated or unknown bytes) raises ``SealError``
and never says which: an attacker learns nothing from the difference.
"""

from __future__ import annotations

import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.errors import InternalError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = b"\x01"
OVERHEAD = len(VERSION) + NONCE_BYTES + TAG_BYTES
"""Bytes ``seal`` adds to a payload."""


class SealError(InternalError):
    """Sealed bytes could not be opened (wrong key or aad, tampered, truncated, or not sealed)."""

    default_code = "seal_error"


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


@functools.lru_cache(maxsize=8)
def _cached(key: bytes) -> AESGCM:
    return AESGCM(key)


def cipher(key: bytes) -> AESGCM:
    """The AES-GCM cipher of ``key`` (kept: a process seals with one or two keys, on every request)."""
    if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
        raise SealError("the sealing key must be 16, 24 or 32 bytes")
    return _cached(key)


def encrypt(plaintext: bytes, key: bytes, *, aad: bytes = b"") -> bytes:
    """``nonce ‖ ciphertext ‖ tag``; a fresh nonce each call, so equal plaintexts give different bytes."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher(key).encrypt(nonce, plaintext, aad)


def decrypt(sealed: bytes, key: bytes, *, aad: bytes = b"") -> bytes:
    """The plaintext ``encrypt`` sealed; ``SealError`` if not sealed with this key and ``aad``."""
    aes = cipher(key)
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SealError("sealed bytes: truncated")
    try:
        return aes.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SealError("sealed bytes: wrong key or tampered") from exc


def seal(plaintext: bytes, key: bytes, *, aad: bytes = b"") -> bytes:
    """``VERSION ‖ nonce ‖ ciphertext ‖ tag`` (``OVERHEAD`` bytes more than ``plaintext``)."""
    return VERSION + encrypt(plaintext, key, aad=aad)


def open_sealed(sealed: bytes, key: bytes, *, aad: bytes = b"") -> bytes:
    """The plaintext ``seal`` sealed; ``SealError`` for another version, key or ``aad``, or any change."""
    if sealed[:1] != VERSION:
        raise SealError("sealed bytes: not sealed, or sealed in an unknown format")
    return decrypt(sealed[1:], key, aad=aad)
