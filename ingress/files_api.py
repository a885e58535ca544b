"""The OpenAI Files API (``/v1/files``): upload (multipart, streamed, bounded), list, retrieve, content,
delete; every file belongs to the caller's key's tenant (``infra/file_store.py`` keeps it in ``GW_FILES``).

An upload is read as it arrives, bounded (``ingress/uploads.py``). A ``batch`` file is then
validated line by line (``schemas/batch_input.py``) before it is stored. Another tenant's file answers
404 exactly like an unknown id. Errors are in the OpenAI shape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from infra.file_store import FileStore
from ingress.asgi import Receive, Scope, Send, send_error
from ingress.intake import authenticate
from ingress.operation_records import recorded, remember_key
from ingress.store_answers import answer, guarded
from ingress.uploads import read_upload
from schemas.batch_input import validate_batch
from schemas.errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from schemas.events import RequestCompleted
from schemas.files import (
    FILE_ID_PREFIX,
    LIST_MAX_LIMIT,
    FileObject,
    StoredFile,
    deleted,
    file_list,
)
from schemas.governance import KeyDirectory
from schemas.ids import uuid7

T = TypeVar("T")
_FILE_ID = re.compile(rf"^{FILE_ID_PREFIX}[0-9a-f]{{32}}$")
_CONTENT_HEADERS = [(b"content-type", b"application/octet-stream")]


def new_file_id() -> str:
    """``file-`` and a UUIDv7's 32 hex digits: ordered by creation, unguessable past the timestamp."""
    return FILE_ID_PREFIX + uuid7().replace("-", "")


def list_page(files: list[FileObject], query: dict[str, str]) -> dict[str, Any]:
    """One page of a listing as OpenAI pages it: ``purpose`` filters, ``order`` (``desc`` by default) by
    creation, ``after`` an id to start past, ``limit`` 1..10,000."""
    purpose = query.get("purpose")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"order: {order!r} is not asc or desc.", param="order", code="invalid_order")
    raw_limit = query.get("limit", str(LIST_MAX_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {LIST_MAX_LIMIT}.", param="limit",
                             code="invalid_limit")
    chosen = [f for f in files if purpose is None or f.purpose == purpose]
    if order == "desc":
        chosen.reverse()
    after = query.get("after")
    if after is not None:
        ids = [f.id for f in chosen]
        chosen = chosen[ids.index(after) + 1:] if after in ids else []
    limit = int(raw_limit)
    return file_list(chosen[:limit], has_more=len(chosen) > limit)


class FilesApi:
    """The handlers; ``store`` is the file store once ingress is connected (``None`` before: 503)."""

    def __init__(self, store: Callable[[], FileStore | None], keys: Callable[[], KeyDirectory],
                 max_file_bytes: int, chunk_timeout_s: float, max_line_bytes: Callable[[], int],
                 record: Callable[[RequestCompleted], None] | None = None) -> None:
        """``record``: where each operation's ``requests`` row goes (ingress's outbox), if anywhere."""
        self._open_store = store
        self._record = record
        self._keys = keys
        self.max_file_bytes = max_file_bytes
        self.chunk_timeout_s = chunk_timeout_s
        self._max_line_bytes = max_line_bytes

    def _store(self) -> FileStore:
        store = self._open_store()
        if store is None:
            raise ServiceUnavailable("The gateway's message broker is unreachable; retry shortly.",
                                     code="broker_unavailable", retry_after_s=1.0)
        return store

    def _tenant(self, scope: Scope) -> str:
        _, key = authenticate(scope, self._keys())
        remember_key(scope, key)  # for the operation's record
        return key.tenant

    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._recorded("files.create", scope, send, lambda s: answer(s, self._create(scope, receive)))

    async def list(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._recorded("files.list", scope, send, lambda s: answer(s, self._list(scope)))

    async def retrieve(self, scope: Scope, send: Send, file_id: str) -> None:
        await self._recorded("files.retrieve", scope, send,
                             lambda s: answer(s, self._retrieve(scope, file_id)))

    async def content(self, scope: Scope, send: Send, file_id: str) -> None:
        await self._recorded("files.content", scope, send, lambda s: self._content(scope, s, file_id))

    async def delete(self, scope: Scope, send: Send, file_id: str) -> None:
        await self._recorded("files.delete", scope, send, lambda s: answer(s, self._delete(scope, file_id)))

    async def _recorded(self, endpoint: str, scope: Scope, send: Send,
                        handler: Callable[[Send], Awaitable[None]]) -> None:
        await recorded(endpoint, scope, send, handler, self._record)

    async def _create(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        tenant = self._tenant(scope)
        upload = await read_upload(scope, receive, self.max_file_bytes, self.chunk_timeout_s)
        try:
            if upload.purpose == "batch":
                validate_batch(upload.data, max_body_bytes=self._max_line_bytes())
            stored = StoredFile(tenant=tenant, file=FileObject(
                id=new_file_id(), bytes=upload.size, created_at=int(time.time()), filename=upload.filename,
                purpose=upload.purpose))
            file = await guarded(self._store().put(stored, upload.data), "file")
        finally:
            upload.close()
        return file.to_body()

    async def _list(self, scope: Scope) -> dict[str, Any]:
        tenant = self._tenant(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        list_page([], query)  # the query's errors before any I/O
        return list_page(await guarded(self._store().list(tenant), "file"), query)

    async def _retrieve(self, scope: Scope, file_id: str) -> dict[str, Any]:
        return (await self._owned(scope, file_id)).to_body()

    async def _content(self, scope: Scope, send: Send, file_id: str) -> None:
        try:
            tenant = self._tenant(scope)
            found = await guarded(self._store().content(tenant, file_id), "file") if _FILE_ID.match(file_id) else None
            if found is None:
                raise _not_found(file_id)
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        file, chunks = found
        try:
            try:
                first = await guarded(anext(chunks), "file")  # the store answers before the response starts
            except GatewayError as exc:
                await send_error(send, exc.info())
                return
            headers = [*_CONTENT_HEADERS, (b"content-length", str(file.bytes).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": first, "more_body": True})
            # a failure from here on cuts the connection: the client gets fewer bytes than content-length
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await chunks.aclose()  # the chunk subscription, whatever happened

    async def _delete(self, scope: Scope, file_id: str) -> dict[str, Any]:
        tenant = self._tenant(scope)
        if not _FILE_ID.match(file_id) or not await guarded(self._store().delete(tenant, file_id), "file"):
            raise _not_found(file_id)
        return deleted(file_id)

    async def _owned(self, scope: Scope, file_id: str) -> FileObject:
        tenant = self._tenant(scope)
        file = await guarded(self._store().get(tenant, file_id), "file") if _FILE_ID.match(file_id) else None
        if file is None:
            raise _not_found(file_id)
        return file



def _not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id", code="file_not_found")

