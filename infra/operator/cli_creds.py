"""Which NATS identity a ``gateway`` command connects as.

``GATEWAY_NATS_CREDS`` when set (an operator's ``gateway operators add NAME`` file, for example); else
the data dir's ``admin`` seed, written by ``gateway up`` and readable only by the user who runs it; for
``gateway sql``, the ``analyst`` seed when admin's is not readable. None when the data dir holds no
seeds at all (a NATS server without users).
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.nats_creds import creds_dir, seed_path
from infra.settings import Settings

WHAT_TO_DO = ("run as the user who runs `gateway up`, or set GATEWAY_NATS_CREDS to an operator's creds file "
              "(`gateway operators add NAME`)")


class NoCredentials(RuntimeError):
    pass


def cli_credentials(settings: Settings, *, analyst: bool = False) -> Path | None:
    if settings.nats_creds is not None:
        return settings.nats_creds
    data_dir = settings.data_dir.resolve()
    candidates = [seed_path(data_dir, "admin")] + ([seed_path(data_dir, "analyst")] if analyst else [])
    for path in candidates:
        if os.access(path, os.R_OK):
            return path
    if any(path.exists() for path in candidates) or creds_dir(data_dir).exists():
        raise NoCredentials(f"cannot read the NATS credentials in {creds_dir(data_dir)}: {WHAT_TO_DO}")
    return None
