"""Owner-only files and directories: the data directory (0700), the envelope key file and the NATS seeds (0600).

Under a 0700 data directory nothing the gateway writes there can be read by another user: nats-server
writes its store owner-only itself, but the chDB store, the logs and ``pids.json`` are created under the
process umask (typically 0755/0644).
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

DIR_MODE = 0o700
KEY_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` created (with its parents) and made owner-only, 0700. A directory this user does not own
    cannot be changed: ``PermissionError`` says what to do."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        try:
            os.chmod(path, DIR_MODE)
        except PermissionError as exc:
            raise PermissionError(f"the directory {path} is not owned by this user and cannot be made "
                                  f"owner-only (0700): run the gateway as its owner, or set GATEWAY_DATA_DIR "
                                  f"to a directory of this user's") from exc
    return path


def owner_only(path: Path) -> Path:
    """An existing file readable or writable by others made 0600 again."""
    if path.stat().st_mode & 0o077:
        os.chmod(path, KEY_MODE)
    return path


def create_private(path: Path, content: bytes) -> bool:
    """Create ``path`` holding ``content`` unless it exists; True when this call created it. Written whole
    under a name of this process's own, with mode 0600 from its first byte, then linked into place
    (atomic and exclusive: the first process wins, an existing file is never replaced, and nobody ever
    reads a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False  # another process was first: its content stands
    finally:
        tmp.unlink(missing_ok=True)


def key_file(path: Path) -> Path:
    """``path``, created with a fresh random key (32 bytes, base64) if missing (``create_private``); an
    existing file readable by others is made owner-only."""
    if not path.exists():
        create_private(path, base64.b64encode(os.urandom(32)))
    return owner_only(path)
