"""A batch runs in its own lane and survives a full restart of ``gateway up``: while the batch lane's stage
host is frozen its lines wait and interactive requests are answered as before; stopped mid-way (every
process, nats-server included) and started again on the same data directory, it resumes where it was and
ends with every line answered exactly once and recorded once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway

pytestmark = pytest.mark.integration

LINES = 120
# ack_wait past the lane's freeze below: a line the frozen host holds is not handed out again meanwhile
# (with the tests' usual 2 s, three redeliveries into the stopped process end it as a repeated failure,
# as they should for a process that stalls that long)
ENV = {"GATEWAY_BATCH_CONCURRENCY": "6", "GATEWAY_BATCH_TENANT_CONCURRENCY": "6", "GATEWAY_ACK_WAIT_S": "10"}


def _http(gw: RunningGateway) -> httpx.Client:
    return httpx.Client(base_url=gw.base_url, headers={"authorization": f"Bearer {DEMO_KEY}"}, timeout=30)


def _batch(gw: RunningGateway) -> str:
    data = b"".join(orjson.dumps({"custom_id": f"r-{i}", "method": "POST", "url": "/v1/chat/completions",
                                  "body": {"model": "gpt-4o-mini", "messages": [
                                      {"role": "user", "content": f"[[mock latency_ms=150]] line {i}"}]}}) + b"\n"
                     for i in range(LINES))
    with _http(gw) as http:
        file_id = http.post("/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}).json()["id"]
        created = http.post("/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                 "completion_window": "24h"})
        assert created.status_code == 200, created.text
        return str(created.json()["id"])


def _get(gw: RunningGateway, batch_id: str) -> dict[str, Any]:
    with _http(gw) as http:
        return dict(http.get(f"/v1/batches/{batch_id}").json())


def _completed_at_least(gw: RunningGateway, batch_id: str, n: int) -> dict[str, int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts: dict[str, int] = _get(gw, batch_id)["request_counts"]
        if counts["completed"] >= n:
            break
        time.sleep(0.2)
    return counts


def _settled(gw: RunningGateway, batch_id: str) -> int:
    """The completed count once it stops moving (the driver writes progress twice a second, and runs at
    the lowest CPU priority: on a busy machine a write can come late)."""
    last, same = -1, 0
    deadline = time.monotonic() + 60
    while same < 3 and time.monotonic() < deadline:
        time.sleep(0.7)
        now = int(_get(gw, batch_id)["request_counts"]["completed"])
        same = same + 1 if now == last else 0
        last = now
    return last


def test_a_batch_runs_in_its_own_lane_and_resumes_after_a_full_restart(tmp_path: Path) -> None:
    root = tmp_path / "gw"
    config = gateway_config(free_port())
    gw = start_gateway(root, config, replicas=["stages=1", "ingress=1"], extra_env=ENV)
    try:
        batch_id = _batch(gw)
        assert _completed_at_least(gw, batch_id, 5)["completed"] >= 5
        # the batch lane's host frozen: its lines stop, the callers' requests do not (they never meet it)
        lane = gw.pids()["lane"]
        os.kill(lane, signal.SIGSTOP)
        try:
            frozen = _settled(gw, batch_id)  # lines already past the lane's last hop land
            with _http(gw) as http:
                for i in range(5):
                    answer = http.post("/v1/chat/completions", json={
                        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"interactive {i}"}]})
                    assert answer.status_code == 200, answer.text
            assert _settled(gw, batch_id) == frozen  # not one line more while the lane was frozen
        finally:
            os.kill(lane, signal.SIGCONT)
        counts = _completed_at_least(gw, batch_id, frozen + 5)
        assert frozen + 5 <= counts["completed"] < LINES, counts  # going again; stopped mid-way
    finally:
        gw.stop()
    gw = start_gateway(root, config, replicas=["stages=1", "ingress=1"], extra_env=ENV)
    try:
        deadline = time.monotonic() + 120
        batch = _get(gw, batch_id)
        while batch["status"] not in ("completed", "failed", "cancelled", "expired") and time.monotonic() < deadline:
            time.sleep(0.3)
            batch = _get(gw, batch_id)
        assert batch["status"] == "completed", batch
        if batch["request_counts"]["failed"]:
            with _http(gw) as http:
                errors = http.get(f"/v1/files/{batch['error_file_id']}/content").text
            raise AssertionError(f"{batch['request_counts']}: {errors[:2000]}")
        assert batch["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
        with _http(gw) as http:
            output = [orjson.loads(line) for line in
                      http.get(f"/v1/files/{batch['output_file_id']}/content").content.splitlines()]
        assert sorted(line["custom_id"] for line in output) == sorted(f"r-{i}" for i in range(LINES))
        rows = gw.wait_rows(f"SELECT count() AS n, uniqExact(custom_id) AS ids FROM requests FINAL "
                            f"WHERE batch_id = '{batch_id}'", lambda rows: rows and rows[0]["n"] >= LINES)
        assert (rows[0]["n"], rows[0]["ids"]) == (LINES, LINES)
    finally:
        gw.stop()
