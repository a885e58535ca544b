"""Usage and cost of a provider call (reported or estimated), and the envelope stamped with what served it."""

from __future__ import annotations

from collections.abc import Callable, Sized
from decimal import Decimal
from typing import Any, Protocol

from schemas.config import Price, Target
from schemas.envelope import Envelope, Usage
from schemas.openai import embedding_texts, estimate_tokens, message_text
from schemas.routing import PlannedTarget
from stages.cost import cost_usd
from stages.providers.base import StreamState
from stages.timing import with_stage_time

STAGE = "provider"
"""The stage that calls providers: ``served`` adds to its time."""
Prices = Callable[[Target], Price | None]


class ServedCall(Protocol):
    """What ``served`` reads of a provider call (``workers.provider_calls.CallResult``)."""

    @property
    def target(self) -> PlannedTarget: ...

    @property
    def attempts(self) -> Sized: ...

    @property
    def provider_ms(self) -> float: ...

    @property
    def ttfb_ms(self) -> float: ...

    @property
    def response(self) -> dict[str, Any] | None: ...


def prompt_estimate(body: dict[str, Any]) -> int:
    texts = [message_text(m) for m in body.get("messages") or [] if isinstance(m, dict)] + embedding_texts(body)
    return estimate_tokens("".join(texts))


def cached_tokens(usage: dict[str, Any]) -> int:
    details = usage.get("prompt_tokens_details")
    return int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0


def response_usage(body: dict[str, Any], response: dict[str, Any]) -> Usage:
    usage = response.get("usage")
    if isinstance(usage, dict) and "prompt_tokens" in usage:
        return Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0),
                     cached_prompt_tokens=cached_tokens(usage), source="provider")
    text = "".join(str((c.get("message") or {}).get("content") or "") for c in response.get("choices") or [])
    return Usage(prompt_tokens=prompt_estimate(body), completion_tokens=estimate_tokens(text), source="estimated")


def stream_usage(body: dict[str, Any], state: StreamState, content: str) -> Usage:
    """A stream's usage: as its provider reported it, else estimated from the prompt and the text streamed."""
    if state.prompt_tokens is not None:
        return Usage(prompt_tokens=state.prompt_tokens, completion_tokens=state.completion_tokens or 0)
    return Usage(prompt_tokens=prompt_estimate(body), completion_tokens=estimate_tokens(content), source="estimated")


def served(envelope: Envelope, started: float, result: ServedCall, usage: Usage | None, prices: Prices,
           discount: float = 0.0, **update: Any) -> Envelope:
    """The envelope with the served target, usage and cost; ``discount``: the share taken off the
    price (a provider's ``batch_discount`` on a batch line)."""
    target = result.target
    cost = cost_usd(prices(target.target), usage.prompt_tokens, usage.completion_tokens,
                    usage.cached_prompt_tokens) if usage else None
    if cost is not None and discount:
        cost = (cost * (1 - Decimal(str(discount)))).quantize(Decimal("0.000000001"))
    return with_stage_time(
        envelope, STAGE, started,
        provider=target.provider,
        route_path=target.path,
        model_served=(result.response or {}).get("model") or target.model,
        attempts=len(result.attempts),
        provider_ms=result.provider_ms,
        ttfb_ms=result.ttfb_ms,
        usage=usage,
        cost_usd=None if cost is None else str(cost),
        **update,
    )
