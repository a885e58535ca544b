"""An incremental Server-Sent Events parser (the WHATWG ``text/event-stream`` rules).

Bytes arrive in arbitrary pieces; ``feed`` returns the events completed so far. Lines end with
``\\n``, ``\\r\\n`` or ``\\r`` (a ``\\r`` at the end of a piece waits for the next one, in case a
``\\n`` follows); ``data:`` lines of one event are joined with ``\\n``; ``:`` lines are comments;
``id`` and ``retry`` are ignored; an event without data is not dispatched; a UTF-8 character split
across pieces is decoded once complete.
"""

from __future__ import annotations

import codecs
import re

from stages.providers.base import SseEvent, StreamParser

_LINE_END = re.compile(r"\r\n|\r|\n")


class SseParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event: str | None = None
        self._data: list[str] = []
        self._started = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        return self._consume(self._decoder.decode(chunk), final=False)

    def flush(self) -> list[SseEvent]:
        """End of stream: dispatch an event whose lines all arrived but whose blank line did not.

        An unterminated last line may be cut mid-way, so it is discarded."""
        events = self._consume(self._decoder.decode(b"", final=True), final=True)
        self._buffer = ""
        pending = self._dispatch()
        if pending is not None:
            events.append(pending)
        return events

    def _consume(self, text: str, *, final: bool) -> list[SseEvent]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        buffer = self._buffer + text
        events: list[SseEvent] = []
        pos = 0
        while (match := _LINE_END.search(buffer, pos)) is not None:
            if match.group() == "\r" and match.end() == len(buffer) and not final:
                break  # a "\n" may follow in the next piece
            event = self._line(buffer[pos : match.start()])
            pos = match.end()
            if event is not None:
                events.append(event)
        self._buffer = buffer[pos:]
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value or None
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event, self._data
        self._event, self._data = None, []
        if not data:
            return None
        return SseEvent(event=event, data="\n".join(data))


class SseStreams:
    """Mixin for adapters whose streams are ``text/event-stream``: ``stream_parser()`` → ``SseParser()``."""

    def stream_parser(self) -> StreamParser:
        return SseParser()
