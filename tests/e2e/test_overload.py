"""Overload sheds, never collapses: past what it may hold, ingress refuses at once with 503 and
``Retry-After`` instead of queueing. Bounded here by depth (``GATEWAY_MAX_PENDING``) so the outcome does
not depend on this machine's speed; ``python bench/overload_drill.py`` drives an open-loop rate above the
measured capacity (the lag and CoDel signals) and prints what callers get."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from bench.fault_drill import http_post
from infra.operator.launcher import start_gateway

pytestmark = pytest.mark.e2e

MAX_PENDING = 4
INGRESS = 2
REQUESTS = 40


def test_past_its_bound_ingress_refuses_at_once(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, extra_env={"GATEWAY_MAX_PENDING": str(MAX_PENDING)})
    try:
        async def one(i: int) -> tuple[int | None, dict[str, str], bytes]:
            body = orjson.dumps({"model": "gpt-4o-mini", "messages": [
                {"role": "user", "content": f"hold r{i} [[mock latency_ms=2000]]"}]})
            answer = await http_post(gw.port, "/v1/chat/completions", body, 30.0)
            return answer.status, answer.headers, bytes(answer.body)

        async def burst() -> list[tuple[int | None, dict[str, str], bytes]]:
            return await asyncio.gather(*(one(i) for i in range(REQUESTS)))

        answers = asyncio.run(burst())
    finally:
        gw.stop()
    served = [orjson.loads(b) for s, _, b in answers if s == 200]
    refused = [(h, orjson.loads(b)) for s, h, b in answers if s == 503]
    assert len(served) + len(refused) == REQUESTS, [s for s, _, _ in answers]  # nothing else: no 504, no errors
    assert 0 < len(served) <= MAX_PENDING * INGRESS  # each ingress held at most its bound
    assert all(r["choices"][0]["message"]["content"].startswith("Echo: hold r") for r in served)
    assert all(h.get("retry-after") == "1" and e["error"]["code"] == "gateway_overloaded" for h, e in refused)
