"""Cost of a request: usage × price (USD per million tokens).

Prices come from, in order: the target's own ``price``, the config's ``prices`` (by provider name,
then by provider type), the shipped catalog (by provider type). No price → ``None`` (*unpriced*),
never zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from schemas.config import CatalogPrice, Price, Target

_MILLION = Decimal(1_000_000)


class PriceBook:
    """Price lookups by (provider name or type, model); later entries override earlier ones."""

    def __init__(self, *catalogs: Iterable[CatalogPrice]) -> None:
        self._prices: dict[tuple[str, str], Price] = {}
        self._max_output: dict[tuple[str, str], int] = {}
        for catalog in catalogs:
            for entry in catalog:
                if entry.max_output is not None:
                    self._max_output[(entry.provider, entry.model)] = entry.max_output
                self._prices[(entry.provider, entry.model)] = Price(
                    input_per_mtok=entry.input_per_mtok,
                    output_per_mtok=entry.output_per_mtok,
                    cached_input_per_mtok=entry.cached_input_per_mtok,
                )

    def price_for(self, target: Target, provider_type: str) -> Price | None:
        if target.price is not None:
            return target.price
        return self._prices.get((target.provider, target.model)) or self._prices.get((provider_type, target.model))

    def max_output_for(self, target: Target, provider_type: str) -> int | None:
        """The model's output token limit, when the catalog knows it (by provider name, then type)."""
        return (self._max_output.get((target.provider, target.model))
                or self._max_output.get((provider_type, target.model)))

    def __len__(self) -> int:
        return len(self._prices)


def cost_usd(price: Price | None, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0
             ) -> Decimal | None:
    if price is None:
        return None
    cached = min(max(0, cached_prompt_tokens), prompt_tokens)
    cached_price = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    total = (price.input_per_mtok * (prompt_tokens - cached) + cached_price * cached
             + price.output_per_mtok * completion_tokens) / _MILLION
    return total.quantize(Decimal("0.000000001"))
