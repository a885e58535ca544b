"""A file sealed at rest a block at a time: it round-trips at every size around a block's edge, and opens
with nothing but its own key and id, its records in order and all there."""

from __future__ import annotations

import io

import pytest

from schemas.sealed_file import BLOCK_BYTES, RECORD_BYTES, FileOpener, open_file, seal_file, sealed_size
from schemas.sealing import SealError

KEY = bytes(range(32))


def _sealed(data: bytes, file_id: str = "file-1") -> bytes:
    return b"".join(seal_file(io.BytesIO(data), KEY, file_id))


@pytest.mark.parametrize("size", [0, 1, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 3 * BLOCK_BYTES + 7])
def test_round_trip_at_every_size(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    sealed = _sealed(data)
    assert len(sealed) == sealed_size(size)
    assert all(len(r) == RECORD_BYTES for r in [sealed[i:i + RECORD_BYTES]
                                                for i in range(0, len(sealed) - RECORD_BYTES, RECORD_BYTES)])
    assert open_file(sealed, KEY, "file-1") == data
    if size >= 16:  # a shorter plaintext (one zero byte) can turn up in random ciphertext by chance
        assert data[:64] not in sealed


def test_only_its_key_id_and_every_record_in_order_open_it() -> None:
    data = b"x" * (2 * BLOCK_BYTES + 10)
    sealed = _sealed(data)
    with pytest.raises(SealError):
        open_file(sealed, bytes(32), "file-1")
    with pytest.raises(SealError):
        open_file(sealed, KEY, "file-2")
    with pytest.raises(SealError):  # the last record dropped: the new last one is not final
        open_file(sealed[:2 * RECORD_BYTES], KEY, "file-1")
    swapped = sealed[RECORD_BYTES:2 * RECORD_BYTES] + sealed[:RECORD_BYTES] + sealed[2 * RECORD_BYTES:]
    with pytest.raises(SealError):
        open_file(swapped, KEY, "file-1")
    flipped = bytearray(sealed)
    flipped[100] ^= 1
    with pytest.raises(SealError):
        open_file(bytes(flipped), KEY, "file-1")
    with pytest.raises(SealError):
        open_file(b"", KEY, "file-1")


@pytest.mark.parametrize("piece", [1000, RECORD_BYTES, RECORD_BYTES + 1, 10 * RECORD_BYTES])
def test_opened_in_pieces_of_any_size(piece: int) -> None:
    data = bytes(i % 253 for i in range(2 * BLOCK_BYTES))  # two full blocks: the last record is full and final
    sealed = _sealed(data)
    opener = FileOpener(KEY, "file-1")
    opened = b"".join(opener.feed(sealed[i:i + piece]) for i in range(0, len(sealed), piece)) + opener.finish()
    assert opened == data
