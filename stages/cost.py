"""Cost of a request from its usage and the target's price (USD per million tokens).

No price → ``None`` (unpriced), never zero."""

from __future__ import annotations

from decimal import Decimal

from schemas.config import Price

_MILLION = Decimal(1_000_000)


def cost_usd(price: Price | None, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    if price is None:
        return None
    total = (price.input_per_mtok * prompt_tokens + price.output_per_mtok * completion_tokens) / _MILLION
    return total.quantize(Decimal("0.000000001"))
