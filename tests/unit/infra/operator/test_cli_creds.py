"""Which NATS identity a ``gateway`` command connects as, and what it says when it has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.nats_creds import seed_path
from infra.nats_users import ensure_identities
from infra.operator import cli_creds
from infra.operator.cli_creds import NoCredentials, cli_credentials
from infra.settings import Settings


def test_gateway_nats_creds_wins(tmp_path: Path) -> None:
    ensure_identities(tmp_path)
    own = tmp_path / "op-alice.nk"
    assert cli_credentials(Settings(data_dir=tmp_path, nats_creds=own)) == own


def test_admin_by_default(tmp_path: Path) -> None:
    ensure_identities(tmp_path)
    assert cli_credentials(Settings(data_dir=tmp_path)) == seed_path(tmp_path.resolve(), "admin")
    assert cli_credentials(Settings(data_dir=tmp_path), analyst=True) == seed_path(tmp_path.resolve(), "admin")


def test_no_seeds_at_all_connects_without(tmp_path: Path) -> None:
    assert cli_credentials(Settings(data_dir=tmp_path)) is None


def test_sql_falls_back_to_the_analyst_when_admin_is_not_readable(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_identities(tmp_path)
    analyst = seed_path(tmp_path.resolve(), "analyst")
    monkeypatch.setattr(cli_creds.os, "access", lambda path, _mode: Path(path) == analyst)
    assert cli_credentials(Settings(data_dir=tmp_path), analyst=True) == analyst
    with pytest.raises(NoCredentials, match="run as the user who runs `gateway up`.*operators add"):
        cli_credentials(Settings(data_dir=tmp_path))


def test_unreadable_seeds_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_identities(tmp_path)
    monkeypatch.setattr(cli_creds.os, "access", lambda _path, _mode: False)
    with pytest.raises(NoCredentials, match="GATEWAY_NATS_CREDS"):
        cli_credentials(Settings(data_dir=tmp_path), analyst=True)
