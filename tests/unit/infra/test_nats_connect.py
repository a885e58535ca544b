"""Every connection authenticates as its process's identity and reads only that identity's inboxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import nats_connect
from infra.nats_connect import CredentialsUnreadable, credentials, options
from infra.nats_creds import seed_path, write_seed


def test_a_seed_file_is_an_nkey_identity_with_its_own_inbox(tmp_path: Path) -> None:
    path = seed_path(tmp_path, "policy")
    write_seed(path)
    assert credentials(path) == {"nkeys_seed": str(path), "inbox_prefix": "_INBOX_policy"}


def test_a_creds_file_is_a_jwt_identity(tmp_path: Path) -> None:
    path = tmp_path / "ingress.creds"
    path.write_text("-----BEGIN NATS USER JWT-----\n...")
    assert credentials(path) == {"user_credentials": str(path), "inbox_prefix": "_INBOX_ingress"}


def test_no_credentials_no_options() -> None:
    assert credentials(None) == {}


def test_unreadable_credentials_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CredentialsUnreadable, match="gateway operators add"):
        credentials(tmp_path / "missing.nk")


def test_options_take_the_process_identity_from_the_environment(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = seed_path(tmp_path, "sink")
    write_seed(path)
    monkeypatch.setenv("GATEWAY_NATS_CREDS", str(path))
    opts = options("sink")
    assert opts["nkeys_seed"] == str(path) and opts["inbox_prefix"] == "_INBOX_sink"
    monkeypatch.delenv("GATEWAY_NATS_CREDS")
    assert "nkeys_seed" not in nats_connect.options("sink")
