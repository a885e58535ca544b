from __future__ import annotations

import base64
import re

import pytest

from schemas.errors import GatewayError
from stages.vault import VaultError, new_key, seal, unseal

MAPPING = {
    "<EMAIL_ADDRESS_1>": "jane.doe@example.com",
    "<PHONE_NUMBER_1>": "+1 212 555 0143",
    "<X_1>": "ünï ✓",
}


def test_round_trip() -> None:
    key = new_key()
    assert unseal(seal(MAPPING, key), key) == MAPPING
    assert unseal(seal({}, key), key) == {}


def test_token_is_url_safe_text_and_hides_the_values() -> None:
    key = new_key()
    token = seal(MAPPING, key)
    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]+", token)
    raw = base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4))
    for placeholder, value in MAPPING.items():
        assert value not in token and placeholder not in token
        assert value.encode() not in raw and placeholder.encode() not in raw


def test_random_nonce_each_time() -> None:
    key = new_key()
    assert seal(MAPPING, key) != seal(MAPPING, key)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_aes_key_sizes(size: int) -> None:
    key = bytes(range(size))
    assert unseal(seal(MAPPING, key), key) == MAPPING


def test_wrong_key_fails() -> None:
    token = seal(MAPPING, new_key())
    with pytest.raises(VaultError, match="wrong key or tampered"):
        unseal(token, new_key())


def test_aad_binds_the_token_to_its_request() -> None:
    key = new_key()
    token = seal(MAPPING, key, aad=b"request-1")
    assert unseal(token, key, aad=b"request-1") == MAPPING
    with pytest.raises(VaultError):
        unseal(token, key, aad=b"request-2")
    with pytest.raises(VaultError):
        unseal(token, key)


def test_any_tampering_fails() -> None:
    key = new_key()
    token = seal(MAPPING, key)
    for i in range(3, len(token)):
        flipped = "A" if token[i] != "A" else "B"
        with pytest.raises(VaultError):
            unseal(token[:i] + flipped + token[i + 1 :], key)
    with pytest.raises(VaultError):
        unseal(token[:-1], key)


@pytest.mark.parametrize("token", ["", "v1.", "v2.AAAA", "v1.!!!!", "v1.AAAA", "v1." + "A" * 30, "plain"])
def test_malformed_tokens_fail_clearly(token: str) -> None:
    with pytest.raises(VaultError, match="sealed placeholder map"):
        unseal(token, new_key())


def test_bad_key_is_refused() -> None:
    with pytest.raises(VaultError, match="16, 24 or 32 bytes"):
        seal(MAPPING, b"short")


def test_vault_error_is_a_gateway_error() -> None:
    error = VaultError("x")
    assert isinstance(error, GatewayError) and error.status_code == 500 and error.code == "vault_error"
