"""The `[[mock ...]]` directive language."""

from __future__ import annotations

import pytest

from infra.doubles.mock_provider.directives import (
    DirectiveError,
    Fault,
    merge,
    parse_fault,
    parse_items,
    strip_directives,
)


def test_strip_collects_every_directive() -> None:
    found: list[str] = []
    text = strip_directives("a [[mock status=429]] b [[mock]] c [[mock timeout  ]]", found)
    assert text == "a  b  c"
    assert found == ["status=429", "", "timeout"]


def test_text_without_marker_is_untouched() -> None:
    found: list[str] = []
    text = "  [[not a directive]]  "
    assert strip_directives(text, found) is text
    assert found == []


def test_parse_full_directive() -> None:
    fault = parse_fault(
        "[[mock latency_ms=5 chunk_delay_ms=2 status=503 retry_after=3 retry_after_ms=250 "
        "cut_after=4 fail_times=2 key=k1 reply_b64=aGk chunk_chars=3 timeout]]"
    )
    assert fault == Fault(
        latency_ms=5,
        chunk_delay_ms=2,
        status=503,
        retry_after="3",
        retry_after_ms=250,
        timeout=True,
        cut_after=4,
        fail_times=2,
        key="k1",
        reply="hi",
        chunk_chars=3,
    )


def test_merge_header_wins() -> None:
    assert merge(["status=500 latency_ms=3", "status=502"], "status=429") == {
        "status": "429",
        "latency_ms": "3",
    }
    assert parse_items("") == {}


@pytest.mark.parametrize("spec", ["what=1", "latency_ms=-1", "status=600", "timeout=maybe", "cut_after=x"])
def test_invalid(spec: str) -> None:
    with pytest.raises(DirectiveError):
        parse_fault(spec)
