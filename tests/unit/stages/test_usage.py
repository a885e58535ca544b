"""Usage of a provider call (reported, else estimated), its cost, and the envelope stamped with the
target that served it (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.config import Price, Target
from schemas.envelope import Envelope, Usage
from schemas.routing import PlannedTarget
from schemas.wire import convert
from stages.providers.base import StreamState
from stages.usage import cached_tokens, prompt_estimate, response_usage, served, stream_usage

PRICE = Price(input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"), cached_input_per_mtok=Decimal("0.5"))
BODY: dict[str, Any] = {"model": "m", "messages": [
    {"role": "system", "content": "Be brief."},  # 9 characters
    {"role": "user", "content": [{"type": "text", "text": "Hello there"}, {"type": "image_url", "image_url": {}}]},
]}


def envelope(**update: Any) -> Envelope:
    values: dict[str, Any] = {"request_id": "r1", "received_at": 1_700_000_000.0, "deadline": 1_700_000_120.0,
                              "reply_to": "gw.reply.ing.r", "model_requested": "m", "body": BODY}
    values.update(update)
    return convert(values, Envelope)


@dataclass
class Call:
    """What ``served`` reads of a provider call (``workers.provider_calls.CallResult`` in the worker)."""

    target: PlannedTarget
    attempts: list[str] = field(default_factory=lambda: ["first"])
    provider_ms: float = 120.0
    ttfb_ms: float = 80.0
    response: dict[str, Any] | None = None


TARGET = PlannedTarget(provider="mock-openai", model="gpt-x", path="route.children.1")


def test_prompt_estimate_counts_message_texts_and_embedding_inputs() -> None:
    assert prompt_estimate(BODY) == 5  # "Be brief.Hello there": 20 characters, ≈ 4 a token
    assert prompt_estimate({"model": "e", "input": ["abcd", [1, 2, 3], "efgh"]}) == 2  # token ids carry no text
    assert prompt_estimate({"model": "m", "messages": ["not a message"]}) == 0


def test_cached_tokens_only_from_prompt_token_details() -> None:
    assert cached_tokens({"prompt_tokens_details": {"cached_tokens": 7}}) == 7
    assert cached_tokens({"prompt_tokens_details": {"cached_tokens": None}}) == 0
    assert cached_tokens({"prompt_tokens_details": "n/a"}) == 0 and cached_tokens({}) == 0


def test_response_usage_as_the_provider_reported_it() -> None:
    response = {"usage": {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}},
                "choices": [{"message": {"content": "ignored when usage is reported"}}]}
    assert response_usage(BODY, response) == Usage(prompt_tokens=12, completion_tokens=3, cached_prompt_tokens=4,
                                                   source="provider")


def test_response_usage_estimated_when_the_provider_gives_none() -> None:
    response = {"choices": [{"message": {"content": "abcdefgh"}}, {"message": {"content": "ijkl"}}, {"message": None}]}
    assert response_usage(BODY, response) == Usage(prompt_tokens=5, completion_tokens=3, source="estimated")
    # a usage object without prompt_tokens is no report
    assert response_usage(BODY, {"usage": {"completion_tokens": 9}}).source == "estimated"


def test_stream_usage_reported_else_estimated_from_the_streamed_text() -> None:
    reported = stream_usage(BODY, StreamState(prompt_tokens=10, completion_tokens=None), "whatever")
    assert reported == Usage(prompt_tokens=10, completion_tokens=0, source="provider")
    estimated = stream_usage(BODY, StreamState(), "abcdefgh")
    assert estimated == Usage(prompt_tokens=5, completion_tokens=2, source="estimated")


def test_served_stamps_the_target_usage_cost_and_stage_time() -> None:
    prices: list[Target] = []

    def price_of(target: Target) -> Price | None:
        prices.append(target)
        return PRICE

    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_prompt_tokens=400)
    call = Call(TARGET, attempts=["a", "b"], response={"model": "gpt-x-2024"})
    out = served(envelope(stage_ms={"routing": 1.0}), 0.0, call, usage, price_of, response={"id": "x"})
    assert prices == [TARGET.target]
    assert (out.provider, out.route_path, out.model_served, out.attempts) == (
        "mock-openai", "route.children.1", "gpt-x-2024", 2)
    assert (out.provider_ms, out.ttfb_ms, out.usage, out.response) == (120.0, 80.0, usage, {"id": "x"})
    # 600 × $1 + 400 × $0.5 + 500 × $2 per million tokens
    assert out.cost_usd == "0.001800000"
    assert out.stage_ms["routing"] == 1.0 and out.stage_ms["provider"] > 0


def test_served_without_usage_or_price_leaves_the_cost_unset() -> None:
    opening = served(envelope(), 0.0, Call(TARGET), None, lambda target: PRICE)
    assert opening.model_served == "gpt-x" and opening.usage is None and opening.cost_usd is None  # the target's model
    unpriced = served(envelope(), 0.0, Call(TARGET), Usage(prompt_tokens=1), lambda target: None)
    assert unpriced.usage is not None and unpriced.cost_usd is None  # unpriced, never zero
