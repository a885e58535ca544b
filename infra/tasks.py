"""Background tasks of a process: stopping one is always the same few lines."""

from __future__ import annotations

import asyncio
import contextlib

RECANCEL_S = 0.5
"""How long a cancelled task has to stop before it is cancelled again."""


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (None: nothing) and wait until it has stopped; how it ended does not matter.

    A cancellation can be lost: a task that awaits a child task gets the child's outcome, and when the
    child's own timeout fires as the cancellation reaches it (nats-py's ``fetch`` awaits a task around
    ``wait_for``), that outcome is a ``TimeoutError``, not a cancellation; a loop that retries on timeouts
    then runs on, and its ``stop()`` waited forever. So the task is cancelled again until it has stopped."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait({task}, timeout=RECANCEL_S)
    if not task.cancelled():
        task.exception()  # retrieved, so it is never reported as unhandled
