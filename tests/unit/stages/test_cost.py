"""Cost: exact Decimal arithmetic; no price means unpriced (None), never zero."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.config import Price
from stages.cost import cost_usd


def price(inp: str, out: str) -> Price:
    return Price(input_per_mtok=Decimal(inp), output_per_mtok=Decimal(out))


@pytest.mark.parametrize("tokens", [(0, 0), (10, 20), (1_000_000, 1_000_000)])
def test_no_price_is_unpriced(tokens: tuple[int, int]) -> None:
    assert cost_usd(None, *tokens) is None


def test_zero_tokens_with_price_is_zero_not_none() -> None:
    result = cost_usd(price("0.15", "0.60"), 0, 0)
    assert result is not None and result == 0


def test_free_price_is_zero_not_none() -> None:
    result = cost_usd(price("0", "0"), 1000, 1000)
    assert result == Decimal(0)


def test_exact_million() -> None:
    assert cost_usd(price("0.15", "0.60"), 1_000_000, 1_000_000) == Decimal("0.75")


def test_decimal_exactness_where_floats_drift() -> None:
    # 3 * 0.1 + 3 * 0.2 is 0.9000000000000001 in binary floats.
    result = cost_usd(price("100000", "200000"), 3, 3)
    assert result == Decimal("0.9")
    assert isinstance(result, Decimal)


def test_small_request_is_exact() -> None:
    # 1234 * 0.15 + 567 * 0.60 = 185.1 + 340.2 = 525.3 per million
    assert cost_usd(price("0.15", "0.60"), 1234, 567) == Decimal("0.0005253")


def test_result_has_nine_decimal_places() -> None:
    result = cost_usd(price("0.15", "0.60"), 1, 1)
    assert result is not None
    assert result.as_tuple().exponent == -9
    assert result == Decimal("0.00000075")


def test_price_from_yaml_float_is_exact() -> None:
    # YAML hands pydantic floats: 0.15 must become Decimal("0.15"), not 0.1499999...
    p = Price(input_per_mtok=0.15, output_per_mtok=0.6)  # type: ignore[arg-type]
    assert cost_usd(p, 1_000_000, 0) == Decimal("0.15")


def test_large_volumes_keep_precision() -> None:
    # 123456789 * 2.5 + 98765432 * 10 = 308641972.5 + 987654320 per million
    assert cost_usd(price("2.5", "10"), 123_456_789, 98_765_432) == Decimal("1296.2962925")


def test_negative_price_refused() -> None:
    with pytest.raises(ValueError):
        price("-1", "0")
