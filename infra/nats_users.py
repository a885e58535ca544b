"""The NATS users of one data dir: every identity's seed (``infra/nats_creds.py``) with its permissions
(``infra/nats_permissions.py``), as nats-server's ``authorization`` block.

``gateway up`` writes it for the embedded server; ``gateway nats-config`` prints it for an external one;
``gateway operators`` rewrites it when an operator is added or removed.
"""

from __future__ import annotations

from pathlib import Path

from infra import nats_creds
from infra.nats_permissions import IDENTITIES, OPERATOR_PREFIX, authorization_block, is_operator


def ensure_identities(data_dir: Path) -> dict[str, Path]:
    """Every built-in identity's seed, generated on first start and reused after."""
    return nats_creds.ensure(data_dir, IDENTITIES)


def users(data_dir: Path) -> dict[str, Path]:
    """The seeds that become users: the built-in identities and the operators (``op-<name>``); any other
    file in the creds dir is ignored."""
    return {identity: path for identity, path in nats_creds.existing(data_dir).items()
            if identity in IDENTITIES or is_operator(identity)}


def users_block(data_dir: Path) -> str:
    return authorization_block(nats_creds.public_keys(users(data_dir)))


def operator_identity(name: str) -> str:
    """``op-<name>`` for a name of letters, digits, ``-`` and ``_`` (``ValueError`` otherwise)."""
    if not name or not all(c.isalnum() or c in "-_" for c in name) or not name.isascii():
        raise ValueError(f"operator name {name!r}: use letters, digits, '-' or '_'")
    return f"{OPERATOR_PREFIX}{name}"
