from __future__ import annotations

from decimal import Decimal

from infra.prices import load_catalog, price_book
from schemas.config import OPENAI_COMPATIBLE_DEFAULT_URLS, GatewayConfig, Target


def test_the_shipped_catalog_loads_with_known_provider_types() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 20
    known = {*OPENAI_COMPATIBLE_DEFAULT_URLS, "azure", "anthropic", "gemini", "cohere"}
    assert {e.provider for e in catalog} <= known
    assert all(e.input_per_mtok >= 0 and e.output_per_mtok >= 0 for e in catalog)
    assert len({(e.provider, e.model) for e in catalog}) == len(catalog)  # no entry shadows another


def test_config_prices_override_the_catalog() -> None:
    config = GatewayConfig.model_validate({"prices": [
        {"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": 1, "output_per_mtok": 2}]})
    price = price_book(config).price_for(Target(provider="p", model="gpt-4o-mini"), "openai")
    assert price is not None and price.input_per_mtok == Decimal(1)
    shipped = price_book(GatewayConfig()).price_for(Target(provider="p", model="gpt-4o-mini"), "openai")
    assert shipped is not None and shipped.input_per_mtok == Decimal("0.15")
