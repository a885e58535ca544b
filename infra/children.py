"""Starting child processes that belong to their parent: ``gateway up``'s workers and nats-server.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only ``gateway up``, which
stops the children in order (ingress first, nats-server last) instead of every process reacting at once
and printing its own interruption. And each child asks the kernel to send it SIGTERM when its parent
dies (``PR_SET_PDEATHSIG``, Linux): a ``gateway up`` killed with SIGKILL leaves no process behind.
Start children from the supervisor's main thread: the kernel ties the signal to the thread that forked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


def set_parent_death_signal() -> None:
    """SIGTERM this process when its parent (the thread that started it) dies (Linux; else nothing)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: Sequence[str], *, env: dict[str, str] | None = None,
          log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` as a child of this process (see the module doc); output appended to ``log_path``."""
    log: IO[bytes] | None = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - closed in finally
    try:
        return subprocess.Popen(list(args), env=env if env is not None else dict(os.environ),
                                stdout=log if log is not None else subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=set_parent_death_signal)
    finally:
        if log is not None:
            log.close()
