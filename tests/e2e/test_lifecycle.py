"""`gateway up` as a user runs it: Ctrl-C stops every process it started; NATS_URL points the same code
at a nats-server it did not start (with the users `gateway nats-config` prints)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra.nats_server import start_nats
from infra.operator.launcher import DEMO_KEY, RunningGateway, permission_violations, start_gateway

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _chat(gw: RunningGateway) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {DEMO_KEY}"},
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]})


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path)
    try:
        assert _chat(gw).status_code == 200
        children = gw.pids()
        assert set(children) == {"nats-server", "sink", "stages.0", "stages.1", "ingress.0", "ingress.1",
                                 "mock_provider", "batch", "lane"}
        gw.process.send_signal(signal.SIGINT)
        assert gw.process.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in children.values()):
            time.sleep(0.1)
        assert not [n for n, p in children.items() if _alive(p)]
        assert "gateway stopped" in (tmp_path / "gateway-up.log").read_text()
    finally:
        gw.stop()


def test_external_nats_url(tmp_path: Path) -> None:
    # the operator's way: `gateway nats-config` prints the users block, pasted into the server's config
    users = subprocess.run([sys.executable, "-m", "infra.operator.cli", "nats-config", "--data-dir",
                            str(tmp_path / "gw" / "data")], capture_output=True, text=True, check=True, timeout=60)
    log = tmp_path / "external-nats.log"
    external = start_nats(tmp_path / "external-nats", log_file=log, authorization=users.stdout)
    try:
        gw = start_gateway(tmp_path / "gw", extra_env={"NATS_URL": external.url})
        try:
            assert "nats-server" not in gw.pids()  # it used ours, started none of its own
            response = _chat(gw)
            assert response.status_code == 200
            request_id = response.headers["x-gateway-request-id"]
            gw.wait_rows(f"SELECT status_code FROM requests WHERE request_id = '{request_id}'",
                         lambda rows: len(rows) == 1)
        finally:
            gw.stop()
        assert permission_violations(log.read_text()) == []  # every process on its identity, none refused
        assert "Authorization Violation" not in log.read_text()
        assert external.process.poll() is None  # stopping the gateway leaves an external server alone
    finally:
        external.stop()


def test_a_killed_gateway_up_leaves_no_process_behind(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path)
    try:
        children = gw.pids()
        gw.process.kill()  # SIGKILL: no chance to stop anything itself
        gw.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in children.values()):
            time.sleep(0.1)
        assert not [n for n, p in children.items() if _alive(p)]  # each died with its parent
    finally:
        gw.stop()
