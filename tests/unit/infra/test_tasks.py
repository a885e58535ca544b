"""Stopping a background task: a cancellation that the task loses (turned into a timeout by a child task,
as nats-py's fetch can) is sent again until the task has stopped."""

from __future__ import annotations

import asyncio

from infra.tasks import cancel


async def test_a_lost_cancellation_is_sent_again() -> None:
    lost = 0

    async def fetch_loop() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost == 0:  # what a child's wait_for timing out as the cancel arrives amounts to
                    lost += 1
                    continue
                raise

    task = asyncio.ensure_future(fetch_loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel(task), timeout=30)
    assert task.cancelled() and lost == 1


async def test_a_finished_or_failed_task_and_none_are_fine() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.ensure_future(fail())
    await asyncio.sleep(0)
    await cancel(failed)
    assert failed.done() and not failed.cancelled()
    await cancel(None)
