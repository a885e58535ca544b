"""A settlement consumer in a process of its own, for the kill -9 test: ``python -m
tests.support.settler_child NATS_URL [DELAY_S]``. ``DELAY_S`` slows every ledger operation down so the
test can kill the process in the middle of its work. Prints ``ready`` once it consumes."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import nats

from infra.ledger import Ledger
from schemas.governance import KeyDirectory
from stages.governance.draft import Draft
from workers.settlement import Settler


async def main(url: str, delay_s: float) -> None:
    nc = await nats.connect(url)
    ledger = await Ledger.open(nc.jetstream(), Draft)
    if delay_s:
        apply = ledger.apply
        one_at_a_time = asyncio.Lock()

        async def slow(key: str, op: Any) -> Any:
            async with one_at_a_time:
                await asyncio.sleep(delay_s)
                return await apply(key, op)

        ledger.apply = slow  # type: ignore[method-assign]
    settler = Settler(lambda: nc, lambda: ledger, KeyDirectory)
    settler.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
