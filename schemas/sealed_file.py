"""A stored file sealed at rest (``GW_FILES``): a sequence of records, each ``sealing.seal`` of one block
of the file, so a file of any size is sealed and opened a block at a time.

Record ``i`` seals up to ``BLOCK_BYTES`` of the file with ``aad = file id ‖ i (8 bytes) ‖ final flag``:
records cannot be reordered, moved to another file, or dropped from the end (the last record, alone,
carries the final flag; an empty file is one empty final record). Every record but the last is
``RECORD_BYTES`` long, so a reader splits the stored bytes without a length prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from schemas.sealing import OVERHEAD, SealError, open_sealed, seal

RECORD_BYTES = 128 * 1024  # nats-py's object store chunk size: one record per chunk
BLOCK_BYTES = RECORD_BYTES - OVERHEAD


def _aad(file_id: str, index: int, final: bool) -> bytes:
    return file_id.encode() + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def seal_file(source: IO[bytes], key: bytes, file_id: str) -> Iterator[bytes]:
    """The sealed records of ``source`` read from where it stands, one block at a time."""
    block = source.read(BLOCK_BYTES)
    index = 0
    while True:
        following = source.read(BLOCK_BYTES) if len(block) == BLOCK_BYTES else b""
        final = not following
        yield seal(block, key, aad=_aad(file_id, index, final))
        if final:
            return
        block, index = following, index + 1


class FileOpener:
    """Opens a sealed file as its bytes arrive, in pieces of any size: ``feed`` each piece (the plaintext of
    the records it completed comes back), then ``finish`` (the last record's). A record is opened only
    once more bytes follow it or the end came, since only the last may carry the final flag."""

    def __init__(self, key: bytes, file_id: str) -> None:
        self._key = key
        self._file_id = file_id
        self._pending = bytearray()
        self._index = 0

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        opened = []
        while len(self._pending) > RECORD_BYTES:
            record = bytes(self._pending[:RECORD_BYTES])
            del self._pending[:RECORD_BYTES]
            opened.append(open_sealed(record, self._key, aad=_aad(self._file_id, self._index, False)))
            self._index += 1
        return b"".join(opened)

    def finish(self) -> bytes:
        """The last record's plaintext; ``SealError`` if the file ended early, was changed or is not this one."""
        if not self._pending:
            raise SealError("sealed file: no final record")
        return open_sealed(bytes(self._pending), self._key, aad=_aad(self._file_id, self._index, True))


def open_file(sealed: bytes, key: bytes, file_id: str) -> bytes:
    """The file ``seal_file`` sealed; ``SealError`` for another key or file id, or any change."""
    opener = FileOpener(key, file_id)
    return opener.feed(sealed) + opener.finish()


def sealed_size(size: int) -> int:
    """How many bytes a file of ``size`` bytes takes sealed."""
    records = max(1, -(-size // BLOCK_BYTES))
    return size + records * OVERHEAD
