"""The NATS identities' nkey seeds: ``<data_dir>/nats/creds/<identity>.nk``.

Generated on first start (``ensure``) and reused after; the directory is 0700, each file 0600, written
atomically (a temporary file linked into place: the first writer wins, a reader never sees half a seed).
Only public keys leave this module (``public_keys``), for nats-server's config. A process is given the
path of its own seed only (``GATEWAY_NATS_CREDS``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

import nkeys

from infra.nats_identity import CREDS_DIR, SEED_SUFFIX, identity_of
from infra.private_files import create_private, owner_only, private_dir

SUFFIX = SEED_SUFFIX


class CredsError(RuntimeError):
    pass


def creds_dir(data_dir: Path) -> Path:
    return data_dir / CREDS_DIR


def seed_path(data_dir: Path, identity: str) -> Path:
    return creds_dir(data_dir) / f"{identity}{SUFFIX}"


def new_seed() -> bytes:
    """A fresh user seed (``SU...``)."""
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed


def public_key(path: Path) -> str:
    """The public key (``U...``) of the seed in ``path``."""
    try:
        seed = path.read_bytes().strip()
        key: bytes = nkeys.from_seed(bytearray(seed)).public_key
        return key.decode()
    except OSError as exc:
        raise CredsError(f"cannot read the NATS seed {path}: {exc.strerror}") from None
    except nkeys.NkeysError as exc:
        raise CredsError(f"{path} holds no valid NATS user seed ({exc}); remove it and restart `gateway up` "
                         "to generate a new one") from None


def write_seed(path: Path) -> bool:
    """Create ``path`` with a new seed unless it exists (True when this call created it)."""
    private_dir(path.parent)
    return create_private(path, new_seed() + b"\n")


def ensure(data_dir: Path, identities: Iterable[str]) -> dict[str, Path]:
    """Every identity's seed file, created where missing; files loosened by hand are made 0600 again."""
    private_dir(creds_dir(data_dir))
    paths: dict[str, Path] = {}
    for identity in identities:
        path = seed_path(data_dir, identity)
        if not path.exists():
            write_seed(path)
        paths[identity] = owner_only(path)
    return paths


def existing(data_dir: Path) -> dict[str, Path]:
    """The seed files present, by identity (operators included)."""
    folder = creds_dir(data_dir)
    if not folder.is_dir():
        return {}
    return {identity_of(p): p for p in sorted(folder.glob(f"*{SUFFIX}"))}


def public_keys(paths: dict[str, Path]) -> dict[str, str]:
    return {identity: public_key(path) for identity, path in paths.items()}


def remove(path: Path) -> bool:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return True
    return False
