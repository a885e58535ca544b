"""An upload read as it arrives: cut with a 413 at the chunk that passes the limit (the rest never read),
a 408 when a chunk is late, a 400 when malformed."""

from __future__ import annotations

import asyncio

import pytest

from ingress.asgi import Message, Receive, Scope
from ingress.uploads import FORM_OVERHEAD_BYTES, read_upload
from schemas.errors import InvalidRequest, PayloadTooLarge, RequestTimeout


def _scope(content_type: str, length: int | None = None) -> Scope:
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "headers": headers}


def _chunks(*chunks: bytes) -> Receive:
    queue = list(chunks)

    async def receive() -> Message:
        chunk = queue.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}
    return receive


async def test_an_oversized_upload_is_cut_while_it_arrives() -> None:
    """The 413 comes at the chunk that passes the limit: the rest is never read."""
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n").encode()
    read: list[int] = []
    chunks = [head] + [b"x" * 1000] * 100

    async def receive() -> Message:
        read.append(1)
        return {"type": "http.request", "body": chunks[len(read) - 1], "more_body": True}
    with pytest.raises(PayloadTooLarge):
        await read_upload(_scope(f"multipart/form-data; boundary={boundary}"), receive, 2500, 5.0)
    assert len(read) == 4  # the header, then 1000 + 1000 + 1000 bytes: over 2,500
    with pytest.raises(PayloadTooLarge):  # a declared length over the limit: refused before any read
        await read_upload(_scope(f"multipart/form-data; boundary={boundary}", 2500 + FORM_OVERHEAD_BYTES + 1),
                          _chunks(), 2500, 5.0)


async def test_a_stalled_upload_is_a_408_and_a_malformed_one_a_400() -> None:
    async def never() -> Message:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")
    with pytest.raises(RequestTimeout):
        await read_upload(_scope("multipart/form-data; boundary=b"), never, 1000, 0.05)
    with pytest.raises(InvalidRequest) as caught:
        await read_upload(_scope("multipart/form-data; boundary=b"), _chunks(b"garbage without a boundary"), 1000, 1)
    assert caught.value.code in ("invalid_multipart", "missing_file")
