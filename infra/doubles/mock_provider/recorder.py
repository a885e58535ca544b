"""A bounded, in-memory log of the provider requests the mock received (auth values masked)."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from infra.doubles.mock_provider.asgi import Headers

AUTH_HEADERS = frozenset(
    {b"authorization", b"proxy-authorization", b"x-api-key", b"api-key", b"x-goog-api-key"}
)
MASK = "<set>"


def mask_query(query: bytes) -> str:
    """The query string with a Gemini-style `key=` credential masked."""
    text = query.decode("latin-1")
    if "key=" not in text:
        return text
    pairs = [(k, MASK if k == "key" else v) for k, v in parse_qsl(text, keep_blank_values=True)]
    return urlencode(pairs, safe="<>")


def header_dict(headers: Headers) -> dict[str, str]:
    """Lower-cased header names to values; repeated headers joined with ", "; auth values masked."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        value = MASK if name in AUTH_HEADERS else raw_value.decode("latin-1")
        key = name.decode("latin-1")
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


_Entry = tuple[int, float, str, str, bytes, Headers, Any]


class Recorder:
    """Keeps the most recent `limit` requests, oldest first.

    Entries are stored raw and rendered (headers lower-cased and masked) only when read, which keeps
    recording off the benchmark hot path. Each entry gets a sequence number (1, 2, ...; never reused,
    not even after `clear`), so a long run can read only what is new: `snapshot(after=n)`.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._entries: deque[_Entry] = deque(maxlen=limit)
        self._seq = itertools.count(1)

    def record(self, method: str, path: str, query: bytes, headers: Headers, body: Any) -> None:
        self._entries.append((next(self._seq), time.time(), method, path, query, headers, body))

    def snapshot(self, after: int = 0) -> list[dict[str, Any]]:
        """The entries with `seq > after`, oldest first (all of them by default)."""
        entries = self._entries
        if after > 0 and entries:
            # seqs in the deque are consecutive: skip straight to the first newer one
            skip = min(len(entries), max(0, after - entries[0][0] + 1))
            selected: Iterable[_Entry] = itertools.islice(entries, skip, None)
        else:
            selected = entries
        return [
            {
                "seq": seq,
                "ts": ts,
                "method": method,
                "path": path,
                "query": mask_query(query) if query else "",
                "headers": header_dict(headers),
                "body": body,
            }
            for seq, ts, method, path, query, headers, body in selected
        ]

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count

    def __len__(self) -> int:
        return len(self._entries)
