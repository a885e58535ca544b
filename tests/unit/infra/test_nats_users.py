"""A data dir's NATS users: the built-in identities and the operators, public keys only."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import nats_creds
from infra.nats_permissions import IDENTITIES
from infra.nats_users import ensure_identities, operator_identity, users, users_block


def test_users_are_the_identities_and_operators_only(tmp_path: Path) -> None:
    ensure_identities(tmp_path)
    nats_creds.write_seed(nats_creds.seed_path(tmp_path, "op-alice"))
    nats_creds.write_seed(nats_creds.seed_path(tmp_path, "stranger"))
    assert set(users(tmp_path)) == {*IDENTITIES, "op-alice"}
    block = users_block(tmp_path)
    assert nats_creds.public_key(nats_creds.seed_path(tmp_path, "op-alice")) in block
    assert nats_creds.public_key(nats_creds.seed_path(tmp_path, "stranger")) not in block
    for path in users(tmp_path).values():
        assert path.read_text().strip() not in block  # seeds never leave their files


@pytest.mark.parametrize("name", ["", "a b", "../x", "a.b", "ä"])
def test_operator_names_are_plain(name: str) -> None:
    with pytest.raises(ValueError):
        operator_identity(name)
    assert operator_identity("alice_2-b") == "op-alice_2-b"
