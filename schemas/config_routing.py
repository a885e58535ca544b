"""The routing sections of the config: how each model alias is served (``models``), the shared circuit
breaker (``circuit_breaker``) and the entries of the price catalog (``prices``).

The routing tree itself (nodes, targets, prices, retries) is ``schemas/routing.py``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.config_cache import CacheSettings
from schemas.routing import FallbackNode, Node, Price, SingleNode, Target


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CatalogPrice(Price):
    """One entry of the price catalog: ``provider`` is a provider *type* (``openai``, ``anthropic``,
    ...) or the name of a configured provider (which wins over its type)."""

    provider: str
    model: str
    max_output: int | None = Field(default=None, ge=1, description="the model's output token limit")


class ModelRoute(_Strict):
    """How one model alias is served: a routing ``route`` tree (see ``schemas/routing.py``), or the
    shorthand ``targets`` (an ordered fallback list)."""

    route: Node | None = None
    targets: list[Target] | None = Field(default=None, min_length=1)
    guardrail_profile: str | None = Field(
        default=None, description="a name in guardrail_profiles, for requests to this alias")
    cache: CacheSettings | None = Field(default=None, description="the response cache for this alias")

    @model_validator(mode="after")
    def _one_of(self) -> ModelRoute:
        if (self.route is None) == (self.targets is None):
            raise ValueError("give either 'route' (a routing tree) or 'targets' (an ordered fallback list)")
        return self

    @property
    def tree(self) -> Node:
        if self.route is not None:
            return self.route
        assert self.targets is not None
        return FallbackNode(type="fallback", children=[
            SingleNode(provider=t.provider, model=t.model, price=t.price) for t in self.targets])

    @property
    def tree_path(self) -> str:
        return "route" if self.route is not None else "targets"


class CircuitBreaker(_Strict):
    """Per target (provider + model), shared by every routing replica.

    Opens when, over the last ``window_s``, at least ``min_requests`` calls ended and either
    ``failure_count`` of them failed or their failure share reached ``failure_rate``; stays open for
    ``cooldown_s``; then lets ``half_open_probes`` requests through: if they all succeed it closes,
    if one fails it opens again."""

    enabled: bool = True
    window_s: float = Field(default=30.0, gt=0, le=3600)
    min_requests: int = Field(default=10, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    failure_count: int | None = Field(default=None, ge=1)
    cooldown_s: float = Field(default=10.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1, le=100)
    failure_status_codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        default_factory=lambda: [500, 502, 503, 504])

