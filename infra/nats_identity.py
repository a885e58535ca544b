"""Which NATS identity a process acts as: the stem of the nkey seed file it was given
(``GATEWAY_NATS_CREDS=<data_dir>/nats/creds/<identity>.nk``), e.g. ``ingress``, ``sink``, ``admin``,
``op-alice``.

The broker authenticates that identity and lets it publish audit entries only on
``gw.audit.by.<identity>`` (``schemas.subjects.audit_subject``), so the chain writer can take the actor
from the subject. Only the path is read here, never the file: connecting with it is the connection
code's job.

- ``identity(settings)``: a process of the gateway; ``anonymous`` when no creds are configured (an
  external NATS without per-process users).
- ``operator_identity(settings)``: the CLI's (``gateway config apply``, ``keys``, ``budgets``, ``sql``);
  with no ``GATEWAY_NATS_CREDS`` it acts as ``admin``, from ``<data_dir>/nats/creds/admin.nk``.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.settings import Settings

ANONYMOUS = "anonymous"
"""The identity of a process given no creds (an external NATS without per-process users)."""
OPERATOR_DEFAULT = "admin"
CREDS_DIR = Path("nats") / "creds"
"""Where ``gateway up`` keeps the seed files, under the data directory (``infra/nats_creds.py``)."""
SEED_SUFFIX = ".nk"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""One NATS subject token that needs no escaping: an identity must be one (it ends a subject)."""


class IdentityError(ValueError):
    """A creds file whose name cannot be an identity."""


def identity_of(creds: Path | None) -> str:
    """The identity a seed file names (its stem), ``anonymous`` for none; ``IdentityError`` for a name
    that is not one subject token (letters, digits, ``_``, ``-``; at most 64)."""
    if creds is None:
        return ANONYMOUS
    name = creds.stem
    if not _TOKEN.fullmatch(name):
        raise IdentityError(
            f"The NATS creds file {str(creds)!r} does not name an identity: its name without the extension "
            f"must be letters, digits, '_' or '-' (at most 64), e.g. op-alice.nk. Rename it, or point "
            "GATEWAY_NATS_CREDS at the file `gateway up` created under <data_dir>/nats/creds/.")
    return name


def identity(settings: Settings) -> str:
    """This process's identity (``GATEWAY_NATS_CREDS``), ``anonymous`` when none is configured."""
    return identity_of(settings.nats_creds)


def operator_creds(settings: Settings) -> Path:
    """The seed file an operator command connects with: ``GATEWAY_NATS_CREDS``, else the data
    directory's ``admin`` one."""
    return settings.nats_creds or settings.data_dir / CREDS_DIR / f"{OPERATOR_DEFAULT}{SEED_SUFFIX}"


def operator_identity(settings: Settings) -> str:
    """The identity an operator command acts as (see ``operator_creds``)."""
    return identity_of(operator_creds(settings))
