"""The routing tree of a model alias, as config data, and the plan it becomes for one request.

A route is a tree of nodes, nested to any depth:

- ``single``: one target (``provider`` + ``model``).
- ``fallback``: children in order; the next one is tried when the previous one fails.
- ``loadbalance``: children ordered per request by a ``strategy`` (``weighted``, ``least_latency``,
  ``lowest_cost``, ``least_busy``), optionally ``sticky`` on a request key; the rest of the order
  is the failover (unless ``failover: false``).
- ``conditional``: the first branch whose ``when`` matches the request, else ``default``.
- ``experiment``: an A/B split: one variant per request by weight (sticky on the user by default);
  the variant's name is recorded on the request's row.

``retry``, ``timeout_s`` and ``on_status_codes`` may be set on any node; a node without them takes
its parent's. ``weight`` is read by a ``loadbalance`` or ``experiment`` parent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Price(_Strict):
    """USD per million tokens. ``cached_input_per_mtok``: for prompt tokens the provider served from
    its prompt cache (when absent, they cost the input price)."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)


class Target(_Strict):
    provider: str
    model: str
    price: Price | None = None

    @property
    def id(self) -> str:
        """The circuit breaker's and the health statistics' key: one per provider and model."""
        return f"{self.provider}/{self.model}"


class RetrySettings(_Strict):
    """Retries of one target: exponential backoff with full jitter, ``Retry-After`` honoured within
    ``max_retry_after_s``, the sum of all waits of a request capped by ``total_backoff_cap_ms``.
    On a node, only the fields written there override the parent's."""

    attempts_per_target: int | None = Field(default=None, ge=1, le=10)
    base_delay_ms: float | None = Field(default=None, ge=0)
    max_delay_ms: float | None = Field(default=None, ge=0)
    max_retry_after_s: float | None = Field(default=None, ge=0)
    total_backoff_cap_ms: float | None = Field(default=None, ge=0)


class RetryPolicy(_Strict):
    """The effective retry settings (every field set)."""

    attempts_per_target: int = Field(default=2, ge=1, le=10)
    base_delay_ms: float = Field(default=100, ge=0)
    max_delay_ms: float = Field(default=2_000, ge=0)
    max_retry_after_s: float = Field(default=10, ge=0)
    total_backoff_cap_ms: float = Field(default=10_000, ge=0)

    def merged(self, override: RetrySettings | None) -> RetryPolicy:
        if override is None:
            return self
        changes = {k: v for k, v in override.model_dump().items() if v is not None}
        return self.model_copy(update=changes) if changes else self


DEFAULT_ON_STATUS_CODES = (401, 402, 403, 404, 408, 409, 429, 500, 501, 502, 503, 504, 520, 521, 522, 523, 524,
                           529)
"""Provider statuses that make a request move on: a retryable one (408, 409, 429, 5xx including
520–524 from a CDN in front of the provider and Anthropic's 529 "overloaded") retries the same target
first; the others (the gateway's provider key refused, out of credit, unknown model) go straight to
the next target. Any other status (400, context length exceeded, 413, 422) ends the request with the
provider's error: another target would refuse it too. Transport failures (timeouts, refused
connections, a stream cut before its first token) always move on."""


class _NodeBase(_Strict):
    retry: RetrySettings | None = None
    timeout_s: float | None = Field(default=None, gt=0, description="per attempt")
    on_status_codes: list[Annotated[int, Field(ge=400, le=599)]] | None = None
    weight: float = Field(default=1.0, ge=0)


class SingleNode(_NodeBase):
    type: Literal["single"] = "single"
    provider: str
    model: str
    price: Price | None = None

    @property
    def target(self) -> Target:
        return Target(provider=self.provider, model=self.model, price=self.price)


class FallbackNode(_NodeBase):
    type: Literal["fallback"]
    children: list[Node] = Field(min_length=1)


StickyKey = Annotated[str, Field(pattern=r"^(user|tenant|api_key|session|(header|tag):[A-Za-z0-9_.-]+)$")]
"""Where a sticky key is read: the request's ``user``, its tenant or key, ``session`` (the
``x-gateway-session-id`` header), a header (``header:x-name``) or a tag (``tag:name``)."""


class LoadBalanceNode(_NodeBase):
    type: Literal["loadbalance"]
    strategy: Literal["weighted", "least_latency", "lowest_cost", "least_busy"] = "weighted"
    sticky: StickyKey | None = None
    failover: bool = True
    children: list[Node] = Field(min_length=1)

    @model_validator(mode="after")
    def _some_weight(self) -> LoadBalanceNode:
        if not any(child.weight > 0 for child in self.children):
            raise ValueError("at least one child needs a weight above 0")
        return self


class Condition(_Strict):
    """Every field given must match (AND); a list matches any of its values (OR)."""

    tenant: list[str] | None = None
    api_key: list[str] | None = None
    user: list[str] | None = None
    model: list[str] | None = None
    endpoint: list[Literal["chat.completions", "messages", "embeddings"]] | None = None
    stream: bool | None = None
    has_tools: bool | None = None
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    tags: dict[str, str | list[str]] | None = None
    headers: dict[str, str | list[str]] | None = None


class Branch(_Strict):
    when: Condition
    route: Node


class ConditionalNode(_NodeBase):
    type: Literal["conditional"]
    branches: list[Branch] = Field(min_length=1)
    default: Node | None = None


class Variant(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    weight: float = Field(gt=0)
    route: Node


class ExperimentNode(_NodeBase):
    type: Literal["experiment"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sticky: StickyKey | None = "user"
    variants: list[Variant] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentNode:
        names = [v.name for v in self.variants]
        if len(names) != len(set(names)):
            raise ValueError("variant names must be unique")
        return self


def _default_single(value: Any) -> Any:
    """``{provider, model}`` without a ``type`` is a ``single`` node."""
    if isinstance(value, dict) and "type" not in value and "provider" in value:
        return {**value, "type": "single"}
    return value


Node = Annotated[
    Annotated[
        SingleNode | FallbackNode | LoadBalanceNode | ConditionalNode | ExperimentNode,
        Field(discriminator="type"),
    ],
    BeforeValidator(_default_single),
]


def walk(node: Node, path: str) -> list[tuple[str, Node]]:
    """Every node of a tree with its dotted config path, parents first."""
    found: list[tuple[str, Node]] = [(path, node)]
    if isinstance(node, FallbackNode | LoadBalanceNode):
        for i, child in enumerate(node.children):
            found += walk(child, f"{path}.children.{i}")
    elif isinstance(node, ConditionalNode):
        for i, branch in enumerate(node.branches):
            found += walk(branch.route, f"{path}.branches.{i}.route")
        if node.default is not None:
            found += walk(node.default, f"{path}.default")
    elif isinstance(node, ExperimentNode):
        for i, variant in enumerate(node.variants):
            found += walk(variant.route, f"{path}.variants.{i}.route")
    return found


class PlannedTarget(_Strict):
    """One step of a request's plan, with the settings its place in the tree gave it."""

    provider: str
    model: str
    price: Price | None = None
    path: str = Field(description="where in the tree it came from, e.g. 'route.children.1'")
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float | None = None
    on_status_codes: tuple[int, ...] = DEFAULT_ON_STATUS_CODES
    probe: bool = Field(default=False, description="this request is the half-open breaker's probe")

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def target(self) -> Target:
        return Target(provider=self.provider, model=self.model, price=self.price)
