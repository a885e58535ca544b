"""``gateway config check``: it validates the file and says which referenced secrets this environment lacks
(only a note: it resolves none of them). ``gateway whoami``: the identity operator commands act as and
whether its creds file is readable. ``gateway sql`` names that identity when it fails."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from infra.nats_server import free_port
from infra.operator.cli import cmd_config_check, main


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1,
        "providers": {"openai": {"type": "openai", "api_key": "env:GW_CLI_SET_KEY"},
                      "other": {"type": "groq", "api_key": "env:GW_CLI_MISSING_KEY"}},
        "redaction": {"operator": "hash", "hash_salt": "env:GW_CLI_MISSING_SALT"},
    }))
    return path


def test_check_names_the_referenced_variables_not_set_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GW_CLI_SET_KEY", "sk-set")
    monkeypatch.delenv("GW_CLI_MISSING_KEY", raising=False)
    monkeypatch.delenv("GW_CLI_MISSING_SALT", raising=False)
    assert cmd_config_check(argparse.Namespace(path=str(_write(tmp_path)))) == 0
    out, err = capsys.readouterr()
    assert ": ok (0 keys, 2 providers" in out
    assert "GW_CLI_MISSING_KEY (referenced for the provider stage" in err
    assert "GW_CLI_MISSING_SALT (referenced for the redaction stage" in err
    assert "GW_CLI_SET_KEY" not in err and "sk-set" not in out + err


def test_check_is_quiet_when_every_variable_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("GW_CLI_SET_KEY", "GW_CLI_MISSING_KEY", "GW_CLI_MISSING_SALT"):
        monkeypatch.setenv(name, "value")
    assert cmd_config_check(argparse.Namespace(path=str(_write(tmp_path)))) == 0
    assert capsys.readouterr().err == ""


def test_whoami_names_the_identity_and_whether_its_creds_are_readable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    creds = tmp_path / "op-alice.nk"
    creds.write_text("SUAEXAMPLE")
    monkeypatch.setenv("GATEWAY_NATS_CREDS", str(creds))
    assert main(["whoami"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "nats:op-alice" and f"creds {creds} (GATEWAY_NATS_CREDS): readable" in out
    assert "reported_by " in out and "unauthenticated" in out
    assert main(["whoami", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["actor"], answer["creds"], answer["readable"]) == ("nats:op-alice", str(creds), True)


def test_whoami_defaults_to_the_data_directorys_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GATEWAY_NATS_CREDS", raising=False)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    assert main(["whoami"]) == 1  # not there yet
    out, err = capsys.readouterr()
    expected = tmp_path / "data" / "nats" / "creds" / "admin.nk"
    assert out.splitlines()[0] == "nats:admin" and f"creds {expected} (the data directory's default)" in out
    assert "NOT readable" in out and "it does not exist" in err and "gateway operators add NAME" in err
    expected.parent.mkdir(parents=True)
    expected.write_text("SUAEXAMPLE")
    assert main(["whoami"]) == 0


def test_whoami_refuses_a_creds_file_that_names_no_identity(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_NATS_CREDS", "/creds/op.alice.nk")
    assert main(["whoami"]) == 2
    assert "Rename it" in capsys.readouterr().err


def test_sql_says_which_identity_it_ran_as_when_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GATEWAY_NATS_CREDS", raising=False)
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{free_port()}")  # nothing listens there
    assert main(["sql", "SELECT 1"]) == 1
    assert "(ran as nats:admin; `gateway whoami` checks its credentials)" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_NATS_CREDS", "/creds/op-alice.nk")
    assert main(["sql", "SELECT 1"]) == 1
    assert "(ran as nats:op-alice;" in capsys.readouterr().err
    monkeypatch.setenv("CLICKHOUSE_URL", f"http://127.0.0.1:{free_port()}")  # a server, queried directly
    assert main(["sql", "SELECT 1"]) == 1
    assert "(ran as the user in CLICKHOUSE_URL)" in capsys.readouterr().err
