"""A process's NATS identity is the stem of its creds file (only the path is read, never the file);
``anonymous`` without one; operator commands default to the data directory's ``admin``."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.nats_identity import (
    ANONYMOUS,
    IdentityError,
    identity,
    identity_of,
    operator_creds,
    operator_identity,
)
from infra.settings import Settings


def test_the_stem_of_the_creds_file_is_the_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_NATS_CREDS", str(tmp_path / "nats" / "creds" / "ingress.nk"))
    settings = Settings()
    assert identity(settings) == "ingress" and operator_identity(settings) == "ingress"
    assert not (tmp_path / "nats").exists()  # never opened: the path alone names it
    assert identity_of(Path("/x/op-alice.nk")) == "op-alice" and identity_of(Path("sink")) == "sink"


def test_no_creds_is_anonymous_but_the_cli_acts_as_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_NATS_CREDS", raising=False)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    assert settings.nats_creds is None and identity(settings) == ANONYMOUS == "anonymous"
    assert operator_creds(settings) == tmp_path / "data" / "nats" / "creds" / "admin.nk"
    assert operator_identity(settings) == "admin"


@pytest.mark.parametrize("name", ["op.alice.nk", "a b.nk", "*.nk", ">.nk", ".nk", "x" * 65 + ".nk"])
def test_a_name_that_cannot_end_a_subject_is_refused_saying_what_to_do(name: str) -> None:
    with pytest.raises(IdentityError, match="Rename it, or point GATEWAY_NATS_CREDS"):
        identity_of(Path("/creds") / name)
