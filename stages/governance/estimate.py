"""The most a request can cost before it runs: estimated prompt tokens × the highest input price among
the alias's possible targets + its output tokens (``max_tokens``, else the model's output limit, else
the configured default) × the highest output price, in integer nano-dollars."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from schemas.config import GatewayConfig, Price, Target
from schemas.governance import NUSD_PER_USD
from schemas.openai import embedding_texts, estimate_tokens, message_text
from schemas.routing import SingleNode, walk
from stages.cost import PriceBook

PriceOf = Callable[[Target, str], Price | None]
"""A target's price, given its provider type (``PriceBook.price_for``)."""
MaxOutputOf = Callable[[Target, str], int | None]
"""A target model's output token limit, given its provider type (``PriceBook.max_output_for``)."""

_NUSD_PER_MTOK_USD = Decimal(NUSD_PER_USD) / Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class AliasPricing:
    """The highest prices among an alias's targets, as nano-dollars per token; ``unpriced`` when one of
    its targets has no known price (then the maxima cover the priced ones only)."""

    input_nusd_per_tok: Decimal = Decimal(0)
    output_nusd_per_tok: Decimal = Decimal(0)
    max_output: int | None = None
    unpriced: bool = False


@dataclass(frozen=True, slots=True)
class Estimate:
    prompt_tokens: int
    output_tokens: int
    nusd: int
    unpriced: bool

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def targets_of(config: GatewayConfig, alias: str) -> list[Target]:
    route = config.models.get(alias)
    if route is None:
        return []
    return [n.target for _, n in walk(route.tree, "route") if isinstance(n, SingleNode)]


def alias_pricing(config: GatewayConfig, alias: str, price_of: PriceOf, max_output_of: MaxOutputOf) -> AliasPricing:
    """The highest prices any target of ``alias`` may charge (an alias with no targets is unpriced)."""
    targets = targets_of(config, alias)
    if not targets:
        return AliasPricing(unpriced=True)
    input_max = output_max = Decimal(0)
    caps: list[int] = []
    unpriced = False
    for target in targets:
        provider = config.providers.get(target.provider)
        kind = provider.type if provider is not None else target.provider
        price = price_of(target, kind)
        if price is None:
            unpriced = True
        else:
            input_max = max(input_max, price.input_per_mtok)
            output_max = max(output_max, price.output_per_mtok)
        cap = max_output_of(target, kind)
        if cap is not None:
            caps.append(cap)
    return AliasPricing(input_nusd_per_tok=input_max * _NUSD_PER_MTOK_USD,
                        output_nusd_per_tok=output_max * _NUSD_PER_MTOK_USD,
                        max_output=max(caps) if caps else None, unpriced=unpriced)


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """Estimated prompt tokens (``estimate_tokens`` of each message's text, or of each embedding input)."""
    messages = body.get("messages") or []
    chat = sum(estimate_tokens(message_text(m)) for m in messages if isinstance(m, dict))
    return chat + sum(estimate_tokens(t) for t in embedding_texts(dict(body)))


def output_tokens(body: Mapping[str, Any], model_cap: int | None, default: int) -> int:
    """The most output a request can produce: its ``max_completion_tokens``/``max_tokens``, else its
    model's output limit, else ``default``; embeddings produce none."""
    if "input" in body and "messages" not in body:
        return 0
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return model_cap if model_cap is not None else default


def estimate(body: Mapping[str, Any], pricing: AliasPricing, default_max_output: int) -> Estimate:
    """The request's maximum cost (rounded up to a whole nano-dollar) and its estimated tokens."""
    prompt = prompt_tokens(body)
    output = output_tokens(body, pricing.max_output, default_max_output)
    cost = prompt * pricing.input_nusd_per_tok + output * pricing.output_nusd_per_tok
    return Estimate(prompt_tokens=prompt, output_tokens=output,
                    nusd=int(cost.to_integral_value(rounding=ROUND_CEILING)), unpriced=pricing.unpriced)


class Pricing:
    """Every alias's pricing under one config version and its price book, computed on first use."""

    def __init__(self, config: GatewayConfig, book: PriceBook) -> None:
        self._config = config
        self._book = book
        self._by_alias: dict[str, AliasPricing] = {}

    def of(self, alias: str) -> AliasPricing:
        found = self._by_alias.get(alias)
        if found is None:
            found = self._by_alias[alias] = alias_pricing(self._config, alias, self._book.price_for,
                                                          self._book.max_output_for)
        return found
