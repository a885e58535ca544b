"""The embedded nats-server: started with JetStream, on one Go scheduler thread by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.nats_server import start_nats


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.parametrize(("override", "expected"), [(None, "1"), ("2", "2")])
def test_one_go_scheduler_thread_unless_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             override: str | None, expected: str) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    if override is not None:
        monkeypatch.setenv("GATEWAY_NATS_GOMAXPROCS", override)
    server = start_nats(tmp_path / "nats")
    try:
        assert _environ(server.process.pid)["GOMAXPROCS"] == expected
    finally:
        server.stop()
