"""The one sealing primitive: AES-GCM, a fresh nonce per call, aad bound, a version byte."""

from __future__ import annotations

import pytest

from schemas import sealing
from schemas.errors import InternalError
from schemas.sealing import OVERHEAD, VERSION, SealError, decrypt, encrypt, new_key, open_sealed, seal

KEY = new_key()


def test_round_trip_and_size() -> None:
    sealed = seal(b"jane@example.com", KEY, aad=b"r1")
    assert sealed[:1] == VERSION and len(sealed) == len(b"jane@example.com") + OVERHEAD
    assert b"jane" not in sealed
    assert open_sealed(sealed, KEY, aad=b"r1") == b"jane@example.com"


def test_fresh_nonce_each_call() -> None:
    assert seal(b"x", KEY)[1:13] != seal(b"x", KEY)[1:13]


@pytest.mark.parametrize("change", ["key", "aad", "byte", "truncated", "version", "unsealed"])
def test_anything_else_fails_the_same_way(change: str) -> None:
    sealed = seal(b'{"content":"secret"}', KEY, aad=b"r1")
    key, aad = KEY, b"r1"
    if change == "key":
        key = new_key()
    elif change == "aad":
        aad = b"r2"
    elif change == "byte":
        sealed = sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:]
    elif change == "truncated":
        sealed = sealed[:20]
    elif change == "version":
        sealed = b"\x02" + sealed[1:]
    else:
        sealed = b'{"content":"secret"}'
    with pytest.raises(SealError):
        open_sealed(sealed, key, aad=aad)


def test_raw_layer_has_no_version_byte() -> None:
    raw = encrypt(b"x", KEY, aad=b"a")
    assert len(raw) == 1 + sealing.NONCE_BYTES + sealing.TAG_BYTES
    assert decrypt(raw, KEY, aad=b"a") == b"x"


@pytest.mark.parametrize("key", [b"", b"short", b"x" * 33, "not bytes"])
def test_a_bad_key_is_refused(key: object) -> None:
    with pytest.raises(SealError, match="16, 24 or 32 bytes"):
        seal(b"x", key)  # type: ignore[arg-type]


def test_seal_error_is_an_internal_error() -> None:
    assert isinstance(SealError("x"), InternalError) and SealError("x").info().status_code == 500
