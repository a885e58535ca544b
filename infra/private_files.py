"""Owner-only files and directories: the data directory (0700) and the envelope key file (0600).

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
            raise PermissionError(f"the data directory {path} is not owned by this user and cannot be made "
                                  f"owner-only (0700): run the gateway as its owner, or set GATEWAY_DATA_DIR "
                                  f"to a directory of this user's") from exc
    return path


def key_file(path: Path) -> Path:
    """``path``, created with a fresh random key (32 bytes, base64) if missing. Written whole under a name
    of this process's own, with mode 0600 from its first byte, then linked into place (atomic: the first
    process wins, the others read its key, and nobody ever reads a partial file). An existing file
    readable by others is made owner-only."""
    if path.exists():
        if path.stat().st_mode & 0o077:
            os.chmod(path, KEY_MODE)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        os.write(fd, base64.b64encode(os.urandom(32)))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process was first: its key is the key
    finally:
        tmp.unlink(missing_ok=True)
    return path
