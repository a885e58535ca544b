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

SUFFIX = ".nk"


class CredsError(RuntimeError):
    pass


def creds_dir(data_dir: Path) -> Path:
    return data_dir / "nats" / "creds"


def seed_path(data_dir: Path, identity: str) -> Path:
    return creds_dir(data_dir) / f"{identity}{SUFFIX}"


def identity_of(path: Path) -> str:
    """The identity a credentials file belongs to (its name without the suffix: ``admin.nk`` → ``admin``)."""
    return path.name.removesuffix(SUFFIX).removesuffix(".creds")


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


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_seed(path: Path) -> bool:
    """Create ``path`` with a new seed unless it exists (True when this call created it)."""
    _private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, new_seed() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic and exclusive: an existing seed is never replaced
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def ensure(data_dir: Path, identities: Iterable[str]) -> dict[str, Path]:
    """Every identity's seed file, created where missing; files loosened by hand are made 0600 again."""
    _private_dir(creds_dir(data_dir))
    paths: dict[str, Path] = {}
    for identity in identities:
        path = seed_path(data_dir, identity)
        if not path.exists():
            write_seed(path)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        paths[identity] = path
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
