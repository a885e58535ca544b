"""``gateway operators`` and ``gateway nats-config``: the seed files and the server's users file they
write, and what they tell the operator (reloading a running server is proven in
``tests/integration/test_nats_permissions.py``)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from infra import nats_creds
from infra.nats_server import AUTH_CONF
from infra.nats_users import ensure_identities
from infra.operator.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    return tmp_path


def test_add_writes_a_private_seed_and_says_how_to_use_it(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operators", "add", "alice"]) == 0
    path = nats_creds.seed_path(data_dir, "op-alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert f"GATEWAY_NATS_CREDS={path} gateway keys list" in out
    assert "has not run here yet" in out  # no server config to rewrite
    assert main(["operators", "add", "alice"]) == 1  # never replaced
    assert "remove alice" in capsys.readouterr().err


def test_add_and_remove_rewrite_the_embedded_servers_users(data_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    store = data_dir / "nats"
    store.mkdir()
    (store / "nats-server.conf").write_text("# written by gateway up\n")
    ensure_identities(data_dir)
    assert main(["operators", "add", "bob"]) == 0
    key = nats_creds.public_key(nats_creds.seed_path(data_dir, "op-bob"))
    assert key in (store / AUTH_CONF).read_text()
    assert "not running" in capsys.readouterr().out
    assert main(["operators", "list"]) == 0
    assert "op-bob" in capsys.readouterr().out
    assert main(["operators", "remove", "bob"]) == 0
    assert key not in (store / AUTH_CONF).read_text()
    assert main(["operators", "remove", "bob"]) == 1


def test_a_running_server_is_reloaded(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = data_dir / "nats"
    store.mkdir()
    (store / "nats-server.conf").write_text("")
    # stands for nats-server: SIGHUP ends it, which shows it was sent (its default action restored: under
    # `nohup` the suite inherits SIGHUP ignored, and so would the sleep)
    sleeper = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        (data_dir / "pids.json").write_text(json.dumps({"nats-server": sleeper.pid}))
        assert main(["operators", "add", "carol"]) == 0
        assert f"reloaded nats-server (pid {sleeper.pid})" in capsys.readouterr().out
        assert sleeper.wait(timeout=10) == -1  # SIGHUP
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_an_external_server_is_left_alone(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NATS_URL", "nats://nats.example.com:4222")
    assert main(["operators", "add", "dave"]) == 0
    assert "gateway nats-config" in capsys.readouterr().out
    assert not (data_dir / "nats" / AUTH_CONF).exists()


def test_nats_config_prints_public_keys_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nats-config", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for path in nats_creds.existing(tmp_path).values():
        assert nats_creds.public_key(path) in out
        assert path.read_text().strip() not in out
    assert "authorization {" in out
    assert os.listdir(nats_creds.creds_dir(tmp_path))  # generated on first use


def test_a_bad_name_is_refused(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operators", "add", "../etc"]) == 2
    assert "letters, digits" in capsys.readouterr().err
