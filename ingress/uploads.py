"""A file upload (``multipart/form-data``: ``file`` and ``purpose``) read as it arrives, bounded.

Parsed by ``python-multipart``'s streaming parser (the one Starlette uses); the file part is written into
a spooled temporary file (memory, then disk past ``SPOOL_MEMORY_BYTES``) and cut with a 413 as soon as it
passes the limit (or the body passes it plus the form's own overhead); each chunk must arrive within
the body timeout (else 408); not multipart is a 415; a missing or unknown field a 400 naming it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ingress.asgi import Receive, Scope, header
from schemas.errors import InvalidRequest, PayloadTooLarge, RequestTimeout
from schemas.files import PURPOSES

SPOOL_MEMORY_BYTES = 1024 * 1024
FORM_OVERHEAD_BYTES = 64 * 1024  # the parts' headers, the purpose field, the boundaries
MAX_FIELD_BYTES = 1024  # a form field's value (purpose)


class _Form:
    """The parts of a multipart body as they arrive: each field's value (small, bounded), and the one
    ``file`` part written into a spooled temporary file, its size counted as it grows."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.fields: dict[str, str] = {}
        self.spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
        self.filename: str | None = None
        self.size = 0
        self.file_parts = 0
        self._headers: dict[bytes, bytes] = {}
        self._name: list[bytes] = []
        self._value: list[bytes] = []
        self._part: str | None = None  # the current part's field name
        self._is_file = False
        self._field = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name.append(data[start:end])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value.append(data[start:end])

    def _header_end(self) -> None:
        self._headers[b"".join(self._name).lower()] = b"".join(self._value).strip(b" \t")
        self._name.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name, filename = options.get(b"name"), options.get(b"filename")
        if name is None:
            raise InvalidRequest("A multipart part has no name (Content-Disposition).", code="invalid_multipart")
        self._part = name.decode("utf-8", "replace")
        self._is_file = filename is not None
        self._field.clear()
        if self._is_file:
            self.file_parts += 1
            if self._part == "file":
                self.filename = (filename or b"").decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            if self._part != "file":
                return  # another file part: refused at the end, its bytes not kept
            self.size += end - start
            if self.size > self.max_file_bytes:
                raise too_large(self.max_file_bytes)
            self.spool.write(data[start:end])
        else:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"Field {self._part!r} is over {MAX_FIELD_BYTES} bytes.", param=self._part,
                                     code="invalid_multipart")

    def _end(self) -> None:
        if not self._is_file and self._part is not None:
            self.fields[self._part] = self._field.decode("utf-8", "replace")


@dataclass
class Upload:
    """A parsed upload: its purpose, filename, size and bytes (a spooled temporary file: memory, then disk
    past ``SPOOL_MEMORY_BYTES``; ``close`` removes it)."""

    purpose: str
    filename: str
    size: int
    spool: IO[bytes]

    @property
    def data(self) -> IO[bytes]:
        self.spool.seek(0)
        return self.spool

    def close(self) -> None:
        self.spool.close()


async def read_upload(scope: Scope, receive: Receive, max_file_bytes: int, chunk_timeout_s: float) -> Upload:
    """Parse a ``multipart/form-data`` upload as it arrives. 415 if not multipart, 413 as soon as the file
    passes ``max_file_bytes``, 408 if a chunk is late, 400 if malformed or missing a field."""
    content_type = header(scope, b"content-type") or ""
    media, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise InvalidRequest(f"Upload a file as multipart/form-data (fields file and purpose), not "
                             f"{content_type or 'no content type'!r}.", status_code=415,
                             code="unsupported_media_type")
    limit = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(max_file_bytes)
    form = _Form(max_file_bytes)
    try:
        parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
        await _feed(parser, receive, limit, max_file_bytes, chunk_timeout_s)
        return _checked(form)
    except BaseException:
        form.spool.close()
        raise


async def _feed(parser: MultipartParser, receive: Receive, limit: int, max_file_bytes: int,
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
                raise too_large(max_file_bytes)
            parser.write(chunk)
            if not message.get("more_body", False):
                break
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"Malformed multipart body: {exc}.", code="invalid_multipart") from None


def _checked(form: _Form) -> Upload:
    if form.filename is None:
        raise InvalidRequest("The upload has no file part (field 'file').", param="file", code="missing_file")
    if form.file_parts > 1:
        raise InvalidRequest("Upload one file at a time.", param="file", code="too_many_files")
    purpose = form.fields.get("purpose")
    if purpose is None:
        raise InvalidRequest("The upload has no purpose field.", param="purpose", code="missing_purpose")
    if purpose not in PURPOSES:
        raise InvalidRequest(f"purpose: {purpose!r} is not one of {', '.join(PURPOSES)}.", param="purpose",
                             code="invalid_purpose")
    return Upload(purpose, form.filename or "upload", form.size, form.spool)


def too_large(max_file_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file exceeds the limit of {max_file_bytes} bytes (GATEWAY_MAX_FILE_BYTES).",
                           param="file", code="file_too_large")
