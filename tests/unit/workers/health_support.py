"""Helpers shared by the health tests (``test_health_reporter.py``, ``test_health_monitor.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

T = "openai/gpt-4o"


async def until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for ``check``; the bound only stops a broken test (a loaded CI machine took 10 s once)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
