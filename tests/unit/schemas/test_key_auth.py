"""Authenticating against the key directory: each refusal its own code and a message saying what to do;
revoked, expired and rotated-out secrets (with and without grace); a KV key wins over a config key."""

from __future__ import annotations

import pytest

from schemas.config import ApiKey, hash_api_key
from schemas.errors import AuthenticationFailed
from schemas.governance import KeyDirectory, KeySecret, VirtualKey
from schemas.key_auth import authenticate, key_of

NOW = 1_800_000_000.0
OLD, NEW = hash_api_key("sk-gw-old"), hash_api_key("sk-gw-new")


def kv_key(**fields: object) -> VirtualKey:
    base: dict[str, object] = {"id": "k1", "tenant": "acme", "team": "ml",
                               "secrets": [KeySecret(sha256=NEW, created_at=NOW - 10)]}
    return VirtualKey(**{**base, **fields})  # type: ignore[arg-type]


def code(directory: KeyDirectory, key_hash: str | None, now: float = NOW) -> str | None:
    with pytest.raises(AuthenticationFailed) as raised:
        authenticate(directory, key_hash, now)
    assert raised.value.status_code == 401
    return raised.value.code


@pytest.mark.parametrize("key_hash", [None, ""])
def test_a_missing_key(key_hash: str | None) -> None:
    assert code(KeyDirectory(kv_keys=[kv_key()]), key_hash) == "missing_api_key"


def test_an_unknown_key_names_no_secret() -> None:
    with pytest.raises(AuthenticationFailed) as raised:
        authenticate(KeyDirectory(kv_keys=[kv_key()]), hash_api_key("sk-other"), NOW)
    assert raised.value.code == "invalid_api_key" and "sk-other" not in raised.value.message


def test_a_valid_key_is_returned_with_its_team() -> None:
    key = authenticate(KeyDirectory(kv_keys=[kv_key()]), NEW, NOW)
    assert (key.id, key.tenant, key.team) == ("k1", "acme", "ml")


def test_revoked_from_its_revocation_on() -> None:
    directory = KeyDirectory(kv_keys=[kv_key(revoked_at=NOW)])
    assert authenticate(directory, NEW, NOW - 1).id == "k1"
    assert code(directory, NEW) == "key_revoked"


def test_expired_at_its_expiry_checked_against_the_time_given() -> None:
    directory = KeyDirectory(kv_keys=[kv_key(expires_at=NOW + 60)])
    assert authenticate(directory, NEW, NOW + 59.9).id == "k1"
    assert code(directory, NEW, NOW + 60) == "key_expired"


def test_a_rotated_secret_works_through_its_grace_then_not() -> None:
    key = kv_key(secrets=[KeySecret(sha256=OLD, created_at=NOW - 100, valid_until=NOW + 600),
                          KeySecret(sha256=NEW, created_at=NOW)])
    directory = KeyDirectory(kv_keys=[key])
    assert authenticate(directory, OLD, NOW + 599).id == "k1"
    assert authenticate(directory, NEW, NOW + 10_000).id == "k1"
    assert code(directory, OLD, NOW + 600) == "key_rotated"


def test_revoked_wins_over_rotated_and_messages_say_what_to_do() -> None:
    key = kv_key(revoked_at=NOW - 1, secrets=[KeySecret(sha256=OLD, created_at=0, valid_until=NOW - 5)])
    with pytest.raises(AuthenticationFailed) as raised:
        authenticate(KeyDirectory(kv_keys=[key]), OLD, NOW)
    assert raised.value.code == "key_revoked" and "gateway keys create" in raised.value.message


def test_a_kv_key_wins_over_a_config_key_with_the_same_hash() -> None:
    config = ApiKey(id="file", key_sha256=NEW, tenant="acme").virtual()
    directory = KeyDirectory(config_keys=[config], kv_keys=[kv_key(revoked_at=NOW - 1)])
    assert code(directory, NEW) == "key_revoked"


def test_key_of_finds_a_key_whatever_its_state() -> None:
    directory = KeyDirectory(kv_keys=[kv_key(revoked_at=NOW - 1, expires_at=NOW - 1)])
    found = key_of(directory, NEW)
    assert found is not None and found.tenant == "acme"
    assert key_of(directory, None) is None and key_of(directory, hash_api_key("x")) is None
