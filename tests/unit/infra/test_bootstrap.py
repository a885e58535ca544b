"""What the composition root builds from plain inputs (no broker, no store)."""

from __future__ import annotations

from decimal import Decimal

from infra.bootstrap import price_book
from schemas.config import GatewayConfig, Target


def test_config_prices_override_the_catalog() -> None:
    config = GatewayConfig.model_validate({"prices": [
        {"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": 1, "output_per_mtok": 2}]})
    price = price_book(config).price_for(Target(provider="p", model="gpt-4o-mini"), "openai")
    assert price is not None and price.input_per_mtok == Decimal(1)
    shipped = price_book(GatewayConfig()).price_for(Target(provider="p", model="gpt-4o-mini"), "openai")
    assert shipped is not None and shipped.input_per_mtok == Decimal("0.15")
