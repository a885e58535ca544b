"""Running a process below others on the CPU: background work that must never delay a waiting caller.

Three kernel knobs, each needed (Linux; elsewhere ``os.nice`` only):

- the **autogroup's** niceness (``/proc/self/autogroup``): with ``sched_autogroup`` on (most desktop and
  many server kernels), the scheduler first shares the CPU between sessions, then between the threads of
  each; ``gateway up`` starts every child in a session of its own, so a thread's niceness alone changes
  nothing against the other children. Only a session's leader changes it (a process started from a
  shell shares the shell's session: lowering it would lower the shell and everything it runs);
- each **thread's** niceness: on Linux ``nice`` is per thread, and threads made before the call (thread
  pools started by imports) keep theirs; threads made after inherit the caller's;
- with ``idle``, the ``SCHED_IDLE`` policy: a thread that runs only on a CPU nothing else wants, and is
  preempted at once when a normal thread wakes up (niceness 19 alone still takes its time slice first).

Raising one's own niceness or moving to ``SCHED_IDLE`` needs no privilege; a knob the system refuses is
skipped (the process still runs, at the priority it had).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")
TASKS = Path("/proc/self/task")


def run_below(niceness: int, *, idle: bool = False) -> None:
    """Lower this process (every thread it has, and the threads it makes later) to ``niceness``; with
    ``idle``, to ``SCHED_IDLE`` too. Never raises the priority back."""
    if os.getsid(0) == os.getpid():  # the session is this process's own
        with contextlib.suppress(OSError):
            AUTOGROUP.write_text(str(niceness))
    try:
        threads = [int(tid) for tid in os.listdir(TASKS)]
    except OSError:  # not Linux: the process's niceness is all there is
        with contextlib.suppress(OSError):
            os.nice(max(0, niceness - os.nice(0)))
        return
    for tid in threads:
        with contextlib.suppress(OSError):
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        if idle and hasattr(os, "SCHED_IDLE"):
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def autogroup_niceness(path: Path = AUTOGROUP) -> int | None:
    """This process's autogroup niceness (None without autogroups, or in the kernel's default one: a
    process whose session was made before autogroups were on, such as a container's first, reads an
    empty file)."""
    try:
        fields = path.read_text().split()  # "/autogroup-123 nice 19"
    except OSError:
        return None
    return int(fields[-1]) if fields else None
