"""A request's maximum cost: the highest prices among the alias's targets, max_tokens or the model's cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.config import CatalogPrice, GatewayConfig
from stages.cost import PriceBook
from stages.governance.estimate import AliasPricing, Pricing, estimate, output_tokens, prompt_tokens


def config(**models: Any) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {"a": {"type": "openai", "base_url": "http://x/v1"},
                      "b": {"type": "anthropic", "base_url": "http://x"}},
        "models": models})


BOOK = PriceBook([
    CatalogPrice(provider="openai", model="m1", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("4"),
                 max_output=1000),
    CatalogPrice(provider="anthropic", model="m2", input_per_mtok=Decimal("3"), output_per_mtok=Decimal("2"),
                 max_output=4000),
])


def test_highest_prices_and_caps_among_the_targets() -> None:
    cfg = config(fb={"targets": [{"provider": "a", "model": "m1"}, {"provider": "b", "model": "m2"}]})
    pricing = Pricing(cfg, BOOK).of("fb")
    assert pricing == AliasPricing(input_nusd_per_tok=Decimal(3000), output_nusd_per_tok=Decimal(4000),
                                   max_output=4000, unpriced=False)
    body = {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 10}
    est = estimate(body, pricing, 4096)
    assert (est.prompt_tokens, est.output_tokens, est.tokens) == (10, 10, 20)
    assert est.nusd == 10 * 3000 + 10 * 4000


def test_a_target_without_price_makes_the_alias_unpriced() -> None:
    cfg = config(mix={"targets": [{"provider": "a", "model": "m1"}, {"provider": "a", "model": "nope"}]})
    assert Pricing(cfg, BOOK).of("mix").unpriced
    assert Pricing(cfg, BOOK).of("missing").unpriced
    target_price = config(own={"targets": [{"provider": "a", "model": "z",
                                            "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}]})
    own = Pricing(target_price, BOOK).of("own")
    assert not own.unpriced and own.max_output is None


def test_output_tokens() -> None:
    assert output_tokens({"messages": [], "max_completion_tokens": 7, "max_tokens": 9}, 100, 50) == 7
    assert output_tokens({"messages": [], "max_tokens": 9}, 100, 50) == 9
    assert output_tokens({"messages": []}, 100, 50) == 100
    assert output_tokens({"messages": []}, None, 50) == 50
    assert output_tokens({"input": "hello"}, None, 50) == 0


def test_prompt_tokens() -> None:
    assert prompt_tokens({"messages": [{"role": "user", "content": "abcd"}, {"role": "user", "content": "abcde"}]}) == 3
    assert prompt_tokens({"input": ["abcd", "abcdefgh"]}) == 3


def test_cost_rounds_up_to_a_whole_nano_dollar() -> None:
    pricing = AliasPricing(input_nusd_per_tok=Decimal("0.15") * 1000, output_nusd_per_tok=Decimal("0.6") * 1000)
    est = estimate({"messages": [{"role": "user", "content": "abc"}], "max_tokens": 1}, pricing, 10)
    assert est.nusd == 750  # 150 + 600
    third = AliasPricing(input_nusd_per_tok=Decimal("0.1"))
    assert estimate({"messages": [{"role": "user", "content": "abc"}], "max_tokens": 1}, third, 1).nusd == 1
