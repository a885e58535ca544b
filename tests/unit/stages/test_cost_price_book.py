from __future__ import annotations

from decimal import Decimal

from schemas.config import CatalogPrice, Price, Target
from stages.cost import PriceBook, cost_usd


def entry(provider: str, model: str, inp: str, out: str, cached: str | None = None) -> CatalogPrice:
    return CatalogPrice(provider=provider, model=model, input_per_mtok=Decimal(inp), output_per_mtok=Decimal(out),
                        cached_input_per_mtok=Decimal(cached) if cached else None)


def test_lookup_order_target_then_provider_name_then_type() -> None:
    shipped = [entry("openai", "gpt-4o-mini", "0.15", "0.60")]
    config = [entry("openai", "gpt-4o-mini", "0.20", "0.80"), entry("my-openai", "gpt-4o-mini", "0.10", "0.40")]
    book = PriceBook(shipped, config)
    by_type = Target(provider="other-openai", model="gpt-4o-mini")
    by_name = Target(provider="my-openai", model="gpt-4o-mini")
    own = Target(provider="my-openai", model="gpt-4o-mini",
                 price=Price(input_per_mtok=Decimal("9"), output_per_mtok=Decimal("9")))
    assert book.price_for(by_type, "openai") == Price(input_per_mtok=Decimal("0.20"), output_per_mtok=Decimal("0.80"))
    assert book.price_for(by_name, "openai") == Price(input_per_mtok=Decimal("0.10"), output_per_mtok=Decimal("0.40"))
    assert book.price_for(own, "openai") == own.price


def test_unknown_model_is_unpriced_not_free() -> None:
    book = PriceBook([entry("openai", "gpt-4o", "2.5", "10")])
    price = book.price_for(Target(provider="x", model="mystery-model"), "openai")
    assert price is None
    assert cost_usd(price, 1000, 1000) is None


def test_cached_prompt_tokens_use_the_cached_price() -> None:
    price = Price(input_per_mtok=Decimal("2.50"), output_per_mtok=Decimal("10"), cached_input_per_mtok=Decimal("1.25"))
    # 1,000 prompt tokens of which 400 cached, 100 completion tokens
    assert cost_usd(price, 1000, 100, 400) == Decimal("0.0015000") + Decimal("0.0005000") + Decimal("0.0010000")
    without_cached_price = Price(input_per_mtok=Decimal("2.50"), output_per_mtok=Decimal("10"))
    assert cost_usd(without_cached_price, 1000, 100, 400) == cost_usd(without_cached_price, 1000, 100)
    assert cost_usd(price, 10, 0, 50) == cost_usd(price, 10, 0, 10)  # cached can never exceed the prompt
