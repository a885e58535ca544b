"""Lose nothing: kill -9 each worker kind while requests flow.

Every accepted request still gets its correct answer (perhaps later), none is answered twice, each
ends as exactly one ``requests`` row, and the supervisor restarts the killed worker. Real processes
throughout: `gateway up`, nats-server with JetStream, chDB, the mock provider.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import DEMO_KEY, RunningGateway, start_gateway

pytestmark = pytest.mark.e2e

REQUESTS_PER_DRILL = 120
RATE_PER_S = 60.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("drill")
    gw = start_gateway(root)
    try:
        yield gw
    finally:
        gw.stop()


async def _one(client: httpx.AsyncClient, gw: RunningGateway, marker: str) -> tuple[str, int, str, str]:
    # 40 ms of provider latency keeps requests in flight in every stage when the kill lands.
    body = {"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"drill {marker} [[mock latency_ms=40]]"}]}
    response = await client.post(f"{gw.base_url}/v1/chat/completions", json=body,
                                 headers={"authorization": f"Bearer {DEMO_KEY}", "x-gateway-timeout-ms": "60000"})
    content = ""
    if response.status_code == 200:
        content = response.json()["choices"][0]["message"]["content"]
    return marker, response.status_code, content, response.headers.get("x-gateway-request-id", "")


async def _load_and_kill(gw: RunningGateway, victim: str, kill_after: int) -> list[tuple[str, int, str, str]]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=90, limits=limits) as client:
        tasks = []
        for i in range(REQUESTS_PER_DRILL):
            if i == kill_after:
                os.kill(gw.pids()[victim], signal.SIGKILL)
            tasks.append(asyncio.create_task(_one(client, gw, f"{victim}-{i}-{time.monotonic_ns()}")))
            await asyncio.sleep(1 / RATE_PER_S)
        return await asyncio.gather(*tasks)


def _wait_restarted(gw: RunningGateway, victim: str, old_pid: int, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = gw.pids().get(victim)
        if pid and pid != old_pid:
            try:
                os.kill(pid, 0)
                return pid
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"{victim} was not restarted within {timeout_s}s")


@pytest.mark.parametrize("victim", ["redaction", "policy", "routing", "provider", "output_filter", "sink"])
def test_kill_9_loses_nothing(gateway: RunningGateway, victim: str) -> None:
    old_pid = gateway.pids()[victim]
    results = asyncio.run(_load_and_kill(gateway, victim, kill_after=REQUESTS_PER_DRILL // 3))

    failed = [(m, s) for m, s, c, _ in results if s != 200 or c != f"Echo: drill {m}"]
    assert not failed, f"{len(failed)} requests without their correct answer, e.g. {failed[:3]}"
    ids = [rid for *_, rid in results]
    assert len(set(ids)) == len(ids) == REQUESTS_PER_DRILL

    new_pid = _wait_restarted(gateway, victim, old_pid)
    assert new_pid != old_pid

    id_list = ", ".join(f"'{rid}'" for rid in ids)
    rows = gateway.wait_rows(
        f"SELECT toString(request_id) AS id, count() AS n, max(status_code) AS status FROM requests "
        f"WHERE request_id IN ({id_list}) GROUP BY request_id",
        lambda r: len(r) == REQUESTS_PER_DRILL, timeout_s=60)
    assert all(r["n"] == 1 for r in rows), [r for r in rows if r["n"] != 1][:3]
    assert all(r["status"] == 200 for r in rows)
