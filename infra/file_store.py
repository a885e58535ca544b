"""The Files API's storage: a JetStream object store (``GW_FILES``), one object per file, named by its id,
its bytes sealed under the envelope key (``schemas/sealed_file.py``: nothing of a file readable at rest).

The owner tenant, purpose, filename and creation time travel in the object's headers (its metadata
message, ``$O.GW_FILES.M.<name>``), so a listing reads only the metadata messages, never a file's chunks.
A tenant sees only its own files: another tenant's id answers ``None`` exactly like an unknown one (the
caller answers 404, so ids do not leak).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncGenerator, Iterator
from typing import IO

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError, ObjectNotFoundError

from schemas import subjects
from schemas.files import FileObject, StoredFile
from schemas.sealed_file import FileOpener, seal_file

_TENANT, _PURPOSE, _FILENAME, _CREATED = "Gw-Tenant", "Gw-Purpose", "Gw-Filename", "Gw-Created-At"
READ_TIMEOUT_S = 10.0  # for each chunk of a file being read
_BYTES = "Gw-Bytes"  # the file's own size (the object's is the sealed size)

FILES_BUCKET = api.ObjectStoreConfig(bucket=subjects.BUCKET_FILES, storage=api.StorageType.FILE,
                                     description="Files API uploads (/v1/files)")


def _headers(stored: StoredFile) -> dict[str, list[str]]:
    """nats.go's shape for object headers (a list of values per name), so every client reads them."""
    f = stored.file
    return {_TENANT: [stored.tenant], _PURPOSE: [f.purpose], _FILENAME: [f.filename], _CREATED: [str(f.created_at)],
            _BYTES: [str(f.bytes)]}


def _first(headers: dict[str, object], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return value if isinstance(value, str) else None


def stored_file(info: api.ObjectInfo) -> StoredFile | None:
    """The file an object holds, or ``None`` for an object that is not one of ours (no owner)."""
    headers = info.headers or {}
    tenant, purpose = _first(headers, _TENANT), _first(headers, _PURPOSE)
    filename, created = _first(headers, _FILENAME), _first(headers, _CREATED)
    if info.deleted or not info.name or tenant is None or purpose is None or filename is None or created is None:
        return None
    size = _first(headers, _BYTES)
    return StoredFile(tenant=tenant, file=FileObject(id=info.name, bytes=int(size or 0), created_at=int(created),
                                                     filename=filename, purpose=purpose))


class FileStore:
    """The ``GW_FILES`` bucket (declared by ``infra/jetstream.declare``), scoped by tenant on every call."""

    def __init__(self, js: JetStreamContext, key: bytes) -> None:
        self._js = js
        self._key = key

    async def put(self, stored: StoredFile, data: IO[bytes]) -> FileObject:
        """Store ``data`` (``stored.file.bytes`` of it, read and sealed a block at a time) under the file's id."""
        store = await self._js.object_store(subjects.BUCKET_FILES)
        meta = api.ObjectMeta(name=stored.file.id, headers=_headers(stored))
        await store.put(stored.file.id, _RecordReader(seal_file(data, self._key, stored.file.id)),  # type: ignore[arg-type]
                        meta=meta)
        return stored.file

    async def _owned(self, tenant: str, file_id: str) -> tuple[api.ObjectInfo, StoredFile] | None:
        """The object and the file it holds, when it is ``tenant``'s (else ``None``, like an unknown id)."""
        store = await self._js.object_store(subjects.BUCKET_FILES)
        try:
            info = await store.get_info(file_id)
        except (ObjectNotFoundError, NotFoundError):
            return None
        stored = stored_file(info)
        return (info, stored) if stored is not None and stored.tenant == tenant else None

    async def get(self, tenant: str, file_id: str) -> FileObject | None:
        owned = await self._owned(tenant, file_id)
        return owned[1].file if owned is not None else None

    async def content(self, tenant: str, file_id: str) -> tuple[FileObject, AsyncGenerator[bytes, None]] | None:
        """The file and its bytes as they are read and opened, a chunk at a time (never all in memory)."""
        owned = await self._owned(tenant, file_id)
        if owned is None or not owned[0].nuid:
            return None
        info, stored = owned
        return stored.file, self._read(info.nuid, file_id)

    async def lines(self, tenant: str, file_id: str | None) -> AsyncGenerator[bytes, None]:
        """A JSONL file's non-blank lines, read a chunk at a time (none for no file, or another tenant's)."""
        found = await self.content(tenant, file_id) if file_id else None
        if found is None:
            return
        _, chunks = found
        rest = b""
        try:
            async for chunk in chunks:
                rest += chunk
                *complete, rest = rest.split(b"\n")
                for line in complete:
                    if line.strip():
                        yield line
            if rest.strip():
                yield rest
        finally:
            await chunks.aclose()

    async def _read(self, nuid: str, file_id: str) -> AsyncGenerator[bytes, None]:
        opener = FileOpener(self._key, file_id)
        sub = await self._js.subscribe(subjects.obj_chunks(subjects.BUCKET_FILES, nuid), ordered_consumer=True,
                                       stream=subjects.obj_stream(subjects.BUCKET_FILES))
        try:
            while True:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
                plain = opener.feed(msg.data)
                if plain:
                    yield plain
                if msg.metadata.num_pending == 0:
                    break
            yield opener.finish()
        finally:
            await sub.unsubscribe()

    async def list(self, tenant: str) -> list[FileObject]:
        """The tenant's files, oldest first (by creation time, then id)."""
        store = await self._js.object_store(subjects.BUCKET_FILES)
        try:
            infos = await store.list(ignore_deletes=True)
        except NotFoundError:  # an empty bucket
            return []
        files = [s.file for s in map(stored_file, infos) if s is not None and s.tenant == tenant]
        return sorted(files, key=lambda f: (f.created_at, f.id))

    async def delete(self, tenant: str, file_id: str) -> bool:
        if await self._owned(tenant, file_id) is None:
            return False
        store = await self._js.object_store(subjects.BUCKET_FILES)
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            await store.delete(file_id)
        return True


class _RecordReader(io.RawIOBase):
    """The sealed records as a reader (what the object store reads from, in a worker thread)."""

    def __init__(self, records: Iterator[bytes]) -> None:
        self._records = records
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending:
            record = next(self._records, None)
            if record is None:
                return 0
            self._pending = record
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
