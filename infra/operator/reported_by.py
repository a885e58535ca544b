"""``user@host`` of whoever runs an operator command, as the operating system tells the CLI: an
unauthenticated hint, kept in the audit entry's detail as ``reported_by``, never the actor (the actor is
the NATS identity the CLI connected as: ``infra/nats_identity.py``)."""

from __future__ import annotations

import getpass
import socket


def reported_by() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user entry (containers): still say where it came from
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
