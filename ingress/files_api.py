"""The OpenAI Files API (``/v1/files``): upload (multipart, streamed, bounded), list, retrieve, content,
delete; every file belongs to the caller's key's tenant (``infra/file_store.py`` keeps it in ``GW_FILES``).

An upload is parsed as it arrives (``python-multipart``) into a spooled temporary file (memory, then disk
past ``SPOOL_MEMORY_BYTES``); the body is cut with a 413 as soon as it passes the file limit (plus the
form's own overhead), each chunk must arrive within the body timeout (else 408). A ``batch`` file is then
validated line by line (``schemas/batch_input.py``) before it is stored. Another tenant's file answers
404 exactly like an unknown id. Errors are in the OpenAI shape.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl

from nats.js import JetStreamContext
from python_multipart import FormParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import Field, File, parse_options_header

from infra.file_store import FileStore
from ingress.asgi import Receive, Scope, Send, header, send_error, send_json
from ingress.intake import authenticate
from schemas.batch_input import validate_batch
from schemas.errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge, RequestTimeout, ServiceUnavailable
from schemas.files import (
    FILE_ID_PREFIX,
    LIST_MAX_LIMIT,
    PURPOSES,
    FileObject,
    StoredFile,
    deleted,
    file_list,
)
from schemas.governance import KeyDirectory
from schemas.ids import uuid7

T = TypeVar("T")
SPOOL_MEMORY_BYTES = 1024 * 1024
FORM_OVERHEAD_BYTES = 64 * 1024  # the parts' headers, the purpose field, the boundaries
_FILE_ID = re.compile(rf"^{FILE_ID_PREFIX}[0-9a-f]{{32}}$")
_CONTENT_HEADERS = [(b"content-type", b"application/octet-stream")]


def new_file_id() -> str:
    """``file-`` and a UUIDv7's 32 hex digits: ordered by creation, unguessable past the timestamp."""
    return FILE_ID_PREFIX + uuid7().replace("-", "")


class _Form:
    """What the multipart parser found: the fields and the one file part."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.file: File | None = None
        self.files: list[File] = []

    def on_field(self, field: Field) -> None:
        name = (field.field_name or b"").decode("utf-8", "replace")
        self.fields[name] = (field.value or b"").decode("utf-8", "replace")

    def on_file(self, file: File) -> None:
        self.files.append(file)
        if (file.field_name or b"") == b"file":
            self.file = file

    def size(self) -> int:
        """The bytes of file parts so far (a part being parsed included)."""
        return sum(f.size for f in self.files)

    def close(self) -> None:
        for file in self.files:
            file.close()


@dataclass
class Upload:
    """A parsed upload: its purpose, filename, size and bytes (the parser's spool: memory, then a
    temporary file past ``SPOOL_MEMORY_BYTES``; ``close`` removes it)."""

    purpose: str
    filename: str
    size: int
    file: File

    @property
    def data(self) -> IO[bytes]:
        data: IO[bytes] = self.file.file_object
        data.seek(0)
        return data

    def close(self) -> None:
        self.file.close()


async def read_upload(scope: Scope, receive: Receive, max_file_bytes: int, chunk_timeout_s: float) -> Upload:
    """Parse a ``multipart/form-data`` upload as it arrives. 415 if not multipart, 413 as soon as it
    passes ``max_file_bytes``, 408 if a chunk is late, 400 if malformed or missing a field."""
    content_type = header(scope, b"content-type") or ""
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidRequest(f"Upload a file as multipart/form-data (fields file and purpose), not "
                             f"{content_type or 'no content type'!r}.", status_code=415,
                             code="unsupported_media_type")
    limit = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(max_file_bytes)
    form = _Form()
    parser = FormParser(media.decode(), form.on_field, form.on_file, boundary=params[b"boundary"],
                        config={"MAX_MEMORY_FILE_SIZE": SPOOL_MEMORY_BYTES})
    try:
        await _feed(parser, form, receive, limit, max_file_bytes, chunk_timeout_s)
    except BaseException:
        form.close()
        raise
    return _checked(form)


async def _feed(parser: FormParser, form: _Form, receive: Receive, limit: int, max_file_bytes: int,
                chunk_timeout_s: float) -> None:
    received = 0
    try:
        while True:
            try:
                message = await asyncio.wait_for(receive(), chunk_timeout_s)
            except TimeoutError:
                raise RequestTimeout(f"The upload stalled: no data for {chunk_timeout_s:g}s "
                                     "(GATEWAY_BODY_TIMEOUT_S).") from None
            if message["type"] == "http.disconnect":
                raise InvalidRequest("The client disconnected during the upload.", code="upload_incomplete")
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise _too_large(max_file_bytes)
            parser.write(chunk)
            if form.size() > max_file_bytes:
                raise _too_large(max_file_bytes)
            if not message.get("more_body", False):
                break
        parser.finalize()
    except FormParserError as exc:
        raise InvalidRequest(f"Malformed multipart body: {exc}.", code="invalid_multipart") from None
    if form.size() > max_file_bytes:
        raise _too_large(max_file_bytes)


def _checked(form: _Form) -> Upload:
    try:
        if form.file is None:
            raise InvalidRequest("The upload has no file part (field 'file').", param="file", code="missing_file")
        if len(form.files) > 1:
            raise InvalidRequest("Upload one file at a time.", param="file", code="too_many_files")
        purpose = form.fields.get("purpose")
        if purpose is None:
            raise InvalidRequest("The upload has no purpose field.", param="purpose", code="missing_purpose")
        if purpose not in PURPOSES:
            raise InvalidRequest(f"purpose: {purpose!r} is not one of {', '.join(PURPOSES)}.", param="purpose",
                                 code="invalid_purpose")
    except GatewayError:
        form.close()
        raise
    filename = (form.file.file_name or b"").decode("utf-8", "replace") or "upload"
    return Upload(purpose, filename, form.file.size, form.file)


def _too_large(max_file_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file exceeds the limit of {max_file_bytes} bytes (GATEWAY_MAX_FILE_BYTES).",
                           param="file", code="file_too_large")


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
    """The handlers; ``js`` is ingress's JetStream context once started (``None`` before: 503)."""

    def __init__(self, js: Callable[[], JetStreamContext | None], keys: Callable[[], KeyDirectory],
                 max_file_bytes: int, chunk_timeout_s: float, max_line_bytes: Callable[[], int]) -> None:
        self._js = js
        self._keys = keys
        self.max_file_bytes = max_file_bytes
        self.chunk_timeout_s = chunk_timeout_s
        self._max_line_bytes = max_line_bytes

    def _store(self) -> FileStore:
        js = self._js()
        if js is None:
            raise ServiceUnavailable("The gateway's message broker is unreachable; retry shortly.",
                                     code="broker_unavailable", retry_after_s=1.0)
        return FileStore(js)

    def _tenant(self, scope: Scope) -> str:
        _, key = authenticate(scope, self._keys())
        return key.tenant

    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            tenant = self._tenant(scope)
            upload = await read_upload(scope, receive, self.max_file_bytes, self.chunk_timeout_s)
            try:
                if upload.purpose == "batch":
                    validate_batch(upload.data, max_body_bytes=self._max_line_bytes())
                stored = StoredFile(tenant=tenant, file=FileObject(
                    id=new_file_id(), bytes=upload.size, created_at=int(time.time()), filename=upload.filename,
                    purpose=upload.purpose))
                file = await _guarded(self._store().put(stored, upload.data))
            finally:
                upload.close()
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, file.to_body())

    async def list(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            tenant = self._tenant(scope)
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            list_page([], query)  # the query's errors before any I/O
            files = await _guarded(self._store().list(tenant))
            page = list_page(files, query)
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, page)

    async def retrieve(self, scope: Scope, send: Send, file_id: str) -> None:
        try:
            file = await self._owned(scope, file_id)
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, file.to_body())

    async def content(self, scope: Scope, send: Send, file_id: str) -> None:
        try:
            tenant = self._tenant(scope)
            data = await _guarded(self._store().content(tenant, file_id)) if _FILE_ID.match(file_id) else None
            if data is None:
                raise _not_found(file_id)
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        headers = [*_CONTENT_HEADERS, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def delete(self, scope: Scope, send: Send, file_id: str) -> None:
        try:
            tenant = self._tenant(scope)
            if not _FILE_ID.match(file_id) or not await _guarded(self._store().delete(tenant, file_id)):
                raise _not_found(file_id)
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, deleted(file_id))

    async def _owned(self, scope: Scope, file_id: str) -> FileObject:
        tenant = self._tenant(scope)
        file = await _guarded(self._store().get(tenant, file_id)) if _FILE_ID.match(file_id) else None
        if file is None:
            raise _not_found(file_id)
        return file



async def _guarded(call: Awaitable[T]) -> T:
    """A file store call whose broker failure is a retryable 503."""
    try:
        return await call
    except GatewayError:
        raise
    except Exception as exc:  # noqa: BLE001 - any broker failure: a retryable 503
        raise _unavailable(exc) from exc


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id", code="file_not_found")


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"The file store is unavailable ({type(exc).__name__}); retry shortly.",
                              code="file_store_unavailable", retry_after_s=1.0)
