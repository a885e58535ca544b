"""The envelope key: from the environment, else a key file created once, owner-only, race-safe."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.private_files import key_file
from infra.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_file_is_created_once_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        key = Settings(data_dir=tmp_path / "d").sealing_key()
    finally:
        os.umask(old)
    path = tmp_path / "d" / "envelope.key"
    assert len(key) == 32 and mode(path) == 0o600
    assert Settings(data_dir=tmp_path / "d").sealing_key() == key
    assert [p.name for p in path.parent.iterdir()] == ["envelope.key"]  # no temporary file left


def test_an_existing_key_file_open_to_others_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "envelope.key"
    path.write_bytes(base64.b64encode(os.urandom(32)))
    os.chmod(path, 0o644)
    Settings(data_dir=tmp_path).sealing_key()
    assert mode(path) == 0o600


def test_the_environment_wins(tmp_path: Path) -> None:
    key = os.urandom(32)
    settings = Settings(data_dir=tmp_path, envelope_key=SecretStr(base64.b64encode(key).decode()))
    assert settings.sealing_key() == key and not (tmp_path / "envelope.key").exists()
    with pytest.raises(ValueError, match="GATEWAY_ENVELOPE_KEY must hold a 32-byte key"):
        Settings(envelope_key=SecretStr(base64.b64encode(b"short").decode())).sealing_key()
    with pytest.raises(ValueError, match="make one with"):
        Settings(envelope_key=SecretStr("not base64!")).sealing_key()


def _read_key(args: tuple[str, multiprocessing.synchronize.Barrier]) -> bytes:
    directory, barrier = args
    barrier.wait()
    return Settings(data_dir=Path(directory)).sealing_key()


def _worker(directory: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue[bytes]) -> None:
    out.put(_read_key((directory, barrier)))


def test_processes_creating_the_key_at_once_all_get_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 8
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    keys = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert len(set(keys)) == 1 and all(p.exitcode == 0 for p in procs)
    assert key_file(tmp_path / "envelope.key").read_bytes() and mode(tmp_path / "envelope.key") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envelope.key"]
