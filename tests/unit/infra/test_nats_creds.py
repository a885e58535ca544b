"""The identities' seed files: generated once, reused, private to their owner, never replaced (generated
through ``nats_users.ensure_identities``, the one caller that makes them all)."""

from __future__ import annotations

import stat
from pathlib import Path

import nkeys
import pytest

from infra import nats_creds
from infra.nats_permissions import IDENTITIES
from infra.nats_users import ensure_identities


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_generates_a_private_seed_per_identity(tmp_path: Path) -> None:
    paths = ensure_identities(tmp_path)
    assert set(paths) == set(IDENTITIES)
    assert mode(nats_creds.creds_dir(tmp_path)) == 0o700
    for identity, path in paths.items():
        assert path == tmp_path / "nats" / "creds" / f"{identity}.nk"
        assert mode(path) == 0o600
        assert nats_creds.public_key(path).startswith("U")  # a user key
    assert len({p.read_bytes() for p in paths.values()}) == len(IDENTITIES)


def test_later_starts_reuse_the_seeds_and_tighten_loosened_modes(tmp_path: Path) -> None:
    first = {i: p.read_bytes() for i, p in ensure_identities(tmp_path).items()}
    loose = nats_creds.seed_path(tmp_path, "sink")
    loose.chmod(0o644)
    nats_creds.creds_dir(tmp_path).chmod(0o755)
    again = {i: p.read_bytes() for i, p in ensure_identities(tmp_path).items()}
    assert again == first
    assert mode(loose) == 0o600 and mode(nats_creds.creds_dir(tmp_path)) == 0o700


def test_an_existing_seed_is_never_replaced(tmp_path: Path) -> None:
    path = nats_creds.seed_path(tmp_path, "op-alice")
    assert nats_creds.write_seed(path)
    before = path.read_bytes()
    assert not nats_creds.write_seed(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["op-alice.nk"]  # no temporary file left


def test_the_public_key_is_the_seeds(tmp_path: Path) -> None:
    path = nats_creds.seed_path(tmp_path, "admin")
    nats_creds.write_seed(path)
    assert nats_creds.public_key(path) == nkeys.from_seed(bytearray(path.read_bytes().strip())).public_key.decode()


def test_a_damaged_seed_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "admin.nk"
    path.write_text("not a seed")
    with pytest.raises(nats_creds.CredsError, match="remove it and restart"):
        nats_creds.public_key(path)
