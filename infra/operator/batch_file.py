"""A batch input file checked on the user's machine before anything is uploaded, and the copy with
``--model`` applied.

Each line is checked by the rule the gateway applies on upload (``schemas/batch_input.py``
``parse_line``: JSON object, ``custom_id``, ``method`` POST, a batch ``url``, a ``body`` object), plus
the file-wide rules: every url equals the batch's endpoint, no ``custom_id`` twice, no empty line before
the last request, at most ``MAX_LINES`` requests. Unlike the gateway, which stops at the first error,
every error is collected so the user fixes the file in one go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

import orjson

from schemas.batch_input import MAX_LINES, BatchLine, parse_line
from schemas.errors import InvalidRequest

_GATEWAY_LINE = re.compile(r"^Line (\d+):? (?:is )?(.*?)\.?$", re.DOTALL)


@dataclass
class FileCheck:
    """What the check found: the endpoint (given, else the first line's url), the request count, and the
    errors, each naming its 1-based line."""

    endpoint: str | None
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.requests > 0


def check_lines(lines: Iterable[bytes], endpoint: str | None = None, *, max_lines: int = MAX_LINES) -> FileCheck:
    """Check every line of a batch input file (``\\n`` kept or not). ``endpoint`` is the one the batch
    will be created for; ``None`` takes the first valid line's url."""
    check = FileCheck(endpoint=endpoint)
    seen: dict[str, int] = {}
    blank: int | None = None  # the previous line, when it was empty
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r\n")
        if blank is not None:  # as the gateway: only the file's last line may be empty
            check.errors.append(f"line {blank}: empty line: each line must be one request")
        blank = number if not raw.strip() else None
        if blank is not None:
            continue
        try:
            line = parse_line(number, raw)
        except InvalidRequest as exc:
            check.errors.append(_lowercase_line(exc.message))
            continue
        _check_line(check, number, line, seen)
    if check.requests > max_lines:
        check.errors.append(f"{check.requests} requests: a batch holds at most {max_lines}")
    if check.requests == 0 and not check.errors:
        check.errors.append("the file has no request: it needs at least one JSON line")
    return check


def _check_line(check: FileCheck, number: int, line: BatchLine, seen: dict[str, int]) -> None:
    if check.endpoint is None:
        check.endpoint = line.url
    if line.url != check.endpoint:
        check.errors.append(f"line {number}: url {line.url!r} differs from the batch's endpoint "
                            f"{check.endpoint!r}; every request of a batch goes to one endpoint")
    first = seen.setdefault(line.custom_id, number)
    if first != number:
        check.errors.append(f"line {number}: duplicate custom_id {line.custom_id!r} (first on line {first})")
    check.requests += 1


def _lowercase_line(message: str) -> str:
    """The gateway's ``Line 3 is not valid JSON: ...`` / ``Line 3: method must ...`` as ``line 3: ...``."""
    found = _GATEWAY_LINE.match(message)
    return f"line {found[1]}: {found[2]}" if found else message.rstrip(".")


def with_model(lines: Iterable[bytes], model: str, out: IO[bytes]) -> None:
    """Write the requests of ``lines`` to ``out`` with ``body.model`` set to ``model`` (lines already
    checked; empty lines dropped)."""
    for raw in lines:
        if not raw.strip():
            continue
        request = orjson.loads(raw)
        request["body"]["model"] = model
        out.write(orjson.dumps(request) + b"\n")
