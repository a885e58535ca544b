from __future__ import annotations

import pytest

from stages.providers.base import SseEvent
from stages.providers.sse import SseParser


def parse(raw: bytes, piece: int | None = None) -> list[SseEvent]:
    parser = SseParser()
    step = piece or len(raw) or 1
    events: list[SseEvent] = []
    for start in range(0, len(raw), step):
        events += parser.feed(raw[start : start + step])
    return events + parser.flush()


def test_data_and_event_fields() -> None:
    raw = b'event: message_start\ndata: {"a": 1}\n\ndata: plain\n\n'
    assert parse(raw) == [SseEvent("message_start", '{"a": 1}'), SseEvent(None, "plain")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse(b"data: one\ndata:two\ndata:  three\n\n") == [SseEvent(None, "one\ntwo\n three")]


def test_comments_id_retry_and_unknown_fields_are_ignored() -> None:
    raw = b": keep-alive\nid: 7\nretry: 1000\nfoo: bar\ndata: x\n\n: another comment\n\n"
    assert parse(raw) == [SseEvent(None, "x")]


def test_event_without_data_is_not_dispatched_and_resets_the_type() -> None:
    assert parse(b"event: ping\n\ndata: x\n\n") == [SseEvent(None, "x")]


def test_empty_data_line_dispatches_an_empty_event() -> None:
    assert parse(b"data:\n\n") == [SseEvent(None, "")]


def test_field_without_colon() -> None:
    assert parse(b"data\n\n") == [SseEvent(None, "")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_endings(newline: bytes) -> None:
    raw = b"event: e" + newline + b"data: a" + newline + b"data: b" + newline + newline
    assert parse(raw) == [SseEvent("e", "a\nb")]


@pytest.mark.parametrize("piece", [1, 2, 3, 5])
def test_events_split_across_feeds(piece: int) -> None:
    raw = 'event: delta\r\ndata: {"text": "héllo 🌍"}\r\n\r\ndata: [DONE]\r\n\r\n'.encode()
    assert parse(raw, piece) == [SseEvent("delta", '{"text": "héllo 🌍"}'), SseEvent(None, "[DONE]")]


def test_cr_at_the_end_of_a_piece_waits_for_a_following_lf() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\ndata: b\n\n") == [SseEvent(None, "a"), SseEvent(None, "b")]


def test_feed_returns_events_as_soon_as_they_complete() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\ndata: b") == [SseEvent(None, "a")]
    assert parser.feed(b"\n\n") == [SseEvent(None, "b")]


def test_leading_bom_is_skipped() -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [SseEvent(None, "x")]


def test_flush_dispatches_complete_lines_without_the_blank_line() -> None:
    parser = SseParser()
    assert parser.feed(b"data: [DONE]\n") == []
    assert parser.flush() == [SseEvent(None, "[DONE]")]


def test_flush_discards_an_unterminated_line() -> None:
    parser = SseParser()
    assert parser.feed(b'data: {"partial') == []
    assert parser.flush() == []


def test_flush_treats_a_trailing_cr_as_a_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.flush() == [SseEvent(None, "x")]
