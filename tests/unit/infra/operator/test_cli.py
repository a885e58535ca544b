"""``gateway config check``: it validates the file and says which referenced secrets this environment lacks
(only a note: it resolves none of them)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from infra.operator.cli import cmd_config_check


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
