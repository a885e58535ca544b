"""A batch input file validated line by line: every error kind names its line, the limits hold."""

from __future__ import annotations

import orjson
import pytest

from schemas.batch_input import MAX_LINES, validate_batch
from schemas.errors import InvalidRequest


def _line(custom_id: object = "a", url: str = "/v1/chat/completions", **extra: object) -> bytes:
    value: dict[str, object] = {"custom_id": custom_id, "method": "POST", "url": url,
                                "body": {"model": "gpt-4o-mini", "messages": []}}
    value.update(extra)
    return orjson.dumps({k: v for k, v in value.items() if v is not None})


def _file(*lines: bytes) -> list[bytes]:
    return (b"\n".join(lines) + b"\n").split(b"\n")


def _refused(lines: list[bytes], **kwargs: int) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        validate_batch(lines, **kwargs)
    assert caught.value.status_code == 400 and caught.value.param == "file"
    return caught.value


def test_a_valid_file_is_counted_with_its_endpoint() -> None:
    summary = validate_batch(_file(_line("a"), _line("b"), _line("c")))
    assert (summary.lines, summary.url) == (3, "/v1/chat/completions")
    embeddings = validate_batch([_line("x", "/v1/embeddings")])  # no final newline
    assert (embeddings.lines, embeddings.url) == (1, "/v1/embeddings")
    assert validate_batch([_line("a") + b"\r\n", _line("b") + b"\r\n"]).lines == 2  # CRLF files


def test_bad_json_names_its_line() -> None:
    error = _refused(_file(_line("a"), b'{"custom_id": "b", '))
    assert error.code == "invalid_json_line" and "Line 2 is not valid JSON" in error.message
    assert _refused(_file(b"[1, 2]")).code == "invalid_json_line"


def test_missing_and_invalid_custom_id() -> None:
    error = _refused(_file(_line("a"), _line("b"), _line(None)))
    assert error.code == "missing_custom_id" and error.message == "Line 3 is missing custom_id."
    assert _refused(_file(_line(7))).code == "invalid_custom_id"
    assert _refused(_file(_line(""))).code == "invalid_custom_id"


def test_a_duplicate_custom_id_names_both_lines() -> None:
    error = _refused(_file(_line("a"), _line("b"), _line("a")))
    assert error.code == "duplicate_custom_id"
    assert error.message == "Duplicate custom_id 'a' on lines 1 and 3."


def test_unsupported_and_mixed_urls() -> None:
    error = _refused(_file(_line("a"), _line("b", "/v1/completions")))
    assert error.code == "unsupported_url" and error.message.startswith("Line 2: unsupported url '/v1/completions'")
    error = _refused(_file(_line("a"), _line("b", "/v1/embeddings")))
    assert error.code == "mixed_urls" and error.message.startswith("Line 2:")


def test_method_body_and_unknown_fields() -> None:
    assert _refused(_file(_line("a", method="GET"))).code == "invalid_method"
    assert _refused(_file(_line("a", body="text"))).code == "invalid_body"
    assert _refused(_file(_line("a", extra=1))).code == "unknown_field"


def test_empty_files_and_lines() -> None:
    assert _refused([b""]).code == "empty_file"
    assert _refused([]).code == "empty_file"
    error = _refused(_file(_line("a"), b"", _line("b")))
    assert error.code == "empty_line" and "Line 2 is empty" in error.message


def test_limits_on_lines_and_on_one_request() -> None:
    lines = _file(*(_line(str(i)) for i in range(4)))
    error = _refused(lines, max_lines=3)
    assert error.code == "too_many_lines" and error.message.startswith("Line 4:")
    assert validate_batch(lines, max_lines=4).lines == 4
    big = _line("a", body={"input": "x" * 200})
    error = _refused(_file(_line("z"), big), max_body_bytes=150)
    assert error.code == "batch_line_too_large" and error.message.startswith("Line 2 is")
    assert MAX_LINES == 50_000
