"""A batch input file (``purpose="batch"``), validated line by line as OpenAI does: pure logic, bytes in,
a summary or the first error out.

Each line is one JSON object ``{"custom_id": str, "method": "POST", "url": <endpoint>, "body": {...}}``;
``custom_id`` is unique in the file, every line names the same ``url``, the file has at least one line
and at most ``MAX_LINES``. An error is an ``InvalidRequest`` (400, OpenAI's shape) naming the line
(1-based) and what is wrong; ``code`` says which kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from schemas.errors import InvalidRequest

BATCH_URLS = ("/v1/chat/completions", "/v1/embeddings")
MAX_LINES = 50_000  # OpenAI's limit on requests in one batch


class BatchLine(BaseModel):
    """One request of a batch input file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    custom_id: str
    method: Literal["POST"]
    url: Literal["/v1/chat/completions", "/v1/embeddings"]
    body: dict[str, Any]


class BatchInput(BaseModel):
    """What a valid batch input file holds: how many requests, to which endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lines: int
    url: str


def _refuse(message: str, code: str) -> InvalidRequest:
    return InvalidRequest(message, param="file", code=code)


def parse_line(number: int, raw: bytes, max_body_bytes: int | None = None) -> BatchLine:
    """Line ``number`` (1-based) as a ``BatchLine``, or the error naming it."""
    if max_body_bytes is not None and len(raw) > max_body_bytes:
        raise _refuse(f"Line {number} is {len(raw)} bytes, over the limit of {max_body_bytes} bytes for one "
                      "request.", "batch_line_too_large")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _refuse(f"Line {number} is not valid JSON: {exc}.", "invalid_json_line") from None
    if not isinstance(value, dict):
        raise _refuse(f"Line {number} is not a JSON object.", "invalid_json_line")
    custom_id = value.get("custom_id")
    if custom_id is None:
        raise _refuse(f"Line {number} is missing custom_id.", "missing_custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise _refuse(f"Line {number}: custom_id must be a non-empty string.", "invalid_custom_id")
    method = value.get("method")
    if method != "POST":
        raise _refuse(f"Line {number}: method must be \"POST\", got {method!r}.", "invalid_method")
    url = value.get("url")
    if url not in BATCH_URLS:
        raise _refuse(f"Line {number}: unsupported url {url!r}; use one of {', '.join(BATCH_URLS)}.",
                      "unsupported_url")
    body = value.get("body")
    if not isinstance(body, dict):
        raise _refuse(f"Line {number}: body must be a JSON object.", "invalid_body")
    extra = sorted(set(value) - {"custom_id", "method", "url", "body"})
    if extra:
        raise _refuse(f"Line {number}: unknown field {extra[0]!r}.", "unknown_field")
    return BatchLine(custom_id=custom_id, method="POST", url=url, body=body)


def validate_batch(lines: Iterable[bytes], *, max_lines: int = MAX_LINES,
                   max_body_bytes: int | None = None) -> BatchInput:
    """Check a batch input file given as its lines (``\\n`` kept or not); a final empty line is the file's
    last newline. Raises ``InvalidRequest`` at the first error."""
    seen: dict[str, int] = {}
    url: str | None = None
    count = 0
    blank: int | None = None
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r\n")
        if blank is not None:
            raise _refuse(f"Line {blank} is empty: each line must be one request.", "empty_line")
        if not raw.strip():
            blank = number
            continue
        line = parse_line(number, raw, max_body_bytes)
        if url is None:
            url = line.url
        elif line.url != url:
            raise _refuse(f"Line {number}: url {line.url!r} differs from {url!r} on line 1; every request of a "
                          "batch goes to one endpoint.", "mixed_urls")
        first = seen.setdefault(line.custom_id, number)
        if first != number:
            raise _refuse(f"Duplicate custom_id {line.custom_id!r} on lines {first} and {number}.",
                          "duplicate_custom_id")
        count += 1
        if count > max_lines:
            raise _refuse(f"Line {number}: a batch holds at most {max_lines} requests.", "too_many_lines")
    if url is None:
        raise _refuse("The batch input file has no request: it needs at least one line.", "empty_file")
    return BatchInput(lines=count, url=url)
