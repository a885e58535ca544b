"""UUIDv7 ids: version and variant bits, millisecond timestamp prefix, order, uniqueness."""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator

import pytest

from schemas import ids
from schemas.ids import uuid7


def test_version_and_variant() -> None:
    for _ in range(200):
        value = uuid.UUID(uuid7())
        assert value.version == 7
        assert value.variant == uuid.RFC_4122


def test_canonical_text_form() -> None:
    text = uuid7()
    assert len(text) == 36 and text == text.lower()
    assert text[14] == "7"
    assert text[19] in "89ab"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A settable time.time_ns for schemas.ids (milliseconds in the list, last one used)."""
    now_ms = [1_700_000_000_123]
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: now_ms[-1] * 1_000_000 + 999_999))
    yield now_ms


def test_timestamp_is_the_leading_48_bits(clock: list[int]) -> None:
    assert uuid.UUID(uuid7()).int >> 80 == clock[-1]


@pytest.mark.parametrize("fill", [b"\x00", b"\xff", b"\x5a"])
def test_random_bits_do_not_clobber_version_variant_or_time(
    clock: list[int], monkeypatch: pytest.MonkeyPatch, fill: bytes
) -> None:
    monkeypatch.setattr(ids, "os", types.SimpleNamespace(urandom=lambda n: fill * n))
    value = uuid.UUID(uuid7())
    assert (value.version, value.variant) == (7, uuid.RFC_4122)
    assert value.int >> 80 == clock[-1]


def test_time_ordered_across_milliseconds_whatever_the_random_bits(
    clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The earlier id gets the largest random bits, the later one the smallest: order must still hold.
    fills = iter([b"\xff", b"\x00"] * 50)
    monkeypatch.setattr(ids, "os", types.SimpleNamespace(urandom=lambda n: next(fills) * n))
    made = []
    for step in range(100):
        clock.append(1_700_000_000_000 + step)
        made.append(uuid7())
    assert made == sorted(made)
    assert [uuid.UUID(x).int for x in made] == sorted(uuid.UUID(x).int for x in made)


def test_real_clock_orders_ids_from_different_milliseconds() -> None:
    import time

    first = uuid7()
    start = time.monotonic()
    while time.monotonic() - start < 0.003:  # step past the current millisecond
        pass
    assert uuid7() > first


def test_unique() -> None:
    made = [uuid7() for _ in range(5_000)]
    assert len(set(made)) == len(made)
