"""Who runs an operator command, as the CLI reports it (``user@host``): self-reported, recorded with
config versions (``apply:user@host``) and in the audit log (``cli:user@host``) until operators
authenticate."""

from __future__ import annotations

import getpass
import socket


def whoami() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user entry (containers): still say where it came from
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
