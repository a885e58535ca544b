"""Owner-only: the data directory 0700, the key file 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from infra.private_files import key_file, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_is_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = private_dir(tmp_path / "a" / "data")
    finally:
        os.umask(old)
    assert mode(path) == 0o700


def test_an_existing_open_data_dir_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    (path / "kept").write_text("x")
    assert mode(private_dir(path)) == 0o700 and (path / "kept").read_text() == "x"


def test_key_file_keeps_an_existing_key(tmp_path: Path) -> None:
    path = key_file(tmp_path / "k")
    first = path.read_bytes()
    assert key_file(path).read_bytes() == first and mode(path) == 0o600
