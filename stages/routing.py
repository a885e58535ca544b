"""Routing: a model alias's tree (``schemas/routing.py``) becomes one request's ordered plan.

Pure: the live inputs (per-target latency and in-flight counts, prices, randomness) are passed in.
The plan is every target the request may try, first choice first, each carrying the retry policy,
timeout and status codes its place in the tree gave it. Circuit breakers are applied afterwards by
the routing worker (they need the shared state).

Tenant policy (``access``, the request's merged ``schemas.governance.Access``): a target that does not
qualify (``stages.governance.access.disqualification``) is left out while the tree is walked, never
tried, and recorded in ``Plan.skipped`` with the reason. Each node keeps its meaning over what is left:
a ``fallback`` falls back over its qualifying children, a ``loadbalance`` ranks (and, with
``failover: false``, picks) among the children with a qualifying target, an ``experiment`` draws among
the variants with a qualifying target (a request its policy keeps from one arm lands in another), and a
``conditional`` keeps the branch the request matched. When nothing qualifies the plan is empty and the
routing stage refuses the request (403 ``policy_denied``).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from schemas.config import GatewayConfig
from schemas.errors import InvalidRequest, NotFound
from schemas.governance import Access
from schemas.openai import estimate_tokens, message_text
from schemas.routing import (
    DEFAULT_ON_STATUS_CODES,
    Condition,
    ConditionalNode,
    ExperimentNode,
    FallbackNode,
    LoadBalanceNode,
    Node,
    PlannedTarget,
    Price,
    RetryPolicy,
    SingleNode,
    Target,
)
from stages.governance.access import disqualification

SESSION_HEADER = "x-gateway-session-id"


class TargetStats(Protocol):
    """Live figures per target id (``provider/model``), from every provider replica's reports."""

    def latency_ms(self, target_id: str) -> float | None: ...

    def inflight(self, target_id: str) -> int: ...


class NoStats:
    def latency_ms(self, target_id: str) -> float | None:
        return None

    def inflight(self, target_id: str) -> int:
        return 0


_NO_STATS = NoStats()
_RNG = random.Random()
PriceOf = Callable[[Target], Price | None]


@dataclass
class RequestFacts:
    """What conditions and sticky keys can look at."""

    model: str
    endpoint: str = "chat.completions"
    stream: bool = False
    tenant: str = ""
    api_key: str = ""
    user: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def prompt_tokens(self) -> int:
        """Estimated (≈ 4 characters a token), computed once and only when a condition asks."""
        messages = self.body.get("messages") or []
        text = "".join(message_text(m) for m in messages if isinstance(m, dict))
        raw = self.body.get("input")
        if isinstance(raw, str):
            text += raw
        elif isinstance(raw, list):
            text += "".join(x for x in raw if isinstance(x, str))
        return estimate_tokens(text)

    @property
    def has_tools(self) -> bool:
        return bool(self.body.get("tools") or self.body.get("functions"))

    def key(self, source: str) -> str:
        """The value of a sticky key source (see ``schemas.routing.StickyKey``); "" when absent."""
        if source == "user":
            return self.user
        if source == "tenant":
            return self.tenant
        if source == "api_key":
            return self.api_key
        if source == "session":
            return self.headers.get(SESSION_HEADER, "")
        kind, _, name = source.partition(":")
        if kind == "header":
            return self.headers.get(name.lower(), "")
        if kind == "tag":
            return self.tags.get(name, "")
        return ""


@dataclass
class Plan:
    targets: list[PlannedTarget]
    experiment: str = ""
    variant: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    """Targets the request's policy ruled out: target id -> why (``region=us, needs eu``)."""


@dataclass(frozen=True)
class _Inherited:
    retry: RetryPolicy
    timeout_s: float | None
    on_status_codes: tuple[int, ...]

    def under(self, node: Node) -> _Inherited:
        if node.retry is None and node.timeout_s is None and node.on_status_codes is None:
            return self
        return _Inherited(
            retry=self.retry.merged(node.retry),
            timeout_s=node.timeout_s if node.timeout_s is not None else self.timeout_s,
            on_status_codes=tuple(node.on_status_codes) if node.on_status_codes is not None
            else self.on_status_codes,
        )


def unit_hash(*parts: str) -> float:
    """A stable number in (0, 1) from the parts: the same key always lands the same way."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 2)


def matches(when: Condition, facts: RequestFacts) -> bool:
    def one_of(allowed: list[str] | None, value: str) -> bool:
        return allowed is None or value in allowed

    def pairs(expected: dict[str, str | list[str]] | None, actual: Mapping[str, str], lower: bool) -> bool:
        for name, want in (expected or {}).items():
            have = actual.get(name.lower() if lower else name)
            if have is None or (have not in want if isinstance(want, list) else have != want):
                return False
        return True

    return (
        one_of(when.tenant, facts.tenant)
        and one_of(when.api_key, facts.api_key)
        and one_of(when.user, facts.user)
        and one_of(when.model, facts.model)
        and (when.endpoint is None or facts.endpoint in when.endpoint)
        and (when.stream is None or facts.stream == when.stream)
        and (when.has_tools is None or facts.has_tools == when.has_tools)
        and (when.min_prompt_tokens is None or facts.prompt_tokens >= when.min_prompt_tokens)
        and (when.max_prompt_tokens is None or facts.prompt_tokens <= when.max_prompt_tokens)
        and pairs(when.tags, facts.tags, lower=False)
        and pairs(when.headers, facts.headers, lower=True)
    )


class Router:
    """Plans requests for every model alias of one config version."""

    def __init__(self, config: GatewayConfig, price_of: PriceOf) -> None:
        self.config = config
        self.price_of = price_of
        self.root = _Inherited(config.retry, None, DEFAULT_ON_STATUS_CODES)
        self._prices: dict[str, float] = {}

    def plan(self, facts: RequestFacts, stats: TargetStats | None = None, rng: random.Random | None = None,
             access: Access | None = None) -> Plan:
        """Every target the request may try, first choice first. With ``access``, only the targets that
        qualify (an empty plan when none does; ``Plan.skipped`` says why each was left out)."""
        route = self.config.models.get(facts.model)
        if route is None:
            raise NotFound(
                f"The model '{facts.model}' does not exist or you do not have access to it. "
                f"Known models: {', '.join(sorted(self.config.models)) or 'none'}.",
                param="model",
                code="model_not_found",
            )
        walk = _Walk(self, facts, stats or _NO_STATS, rng or _RNG, access)
        unique: dict[str, PlannedTarget] = {}
        for target in walk.expand(route.tree, route.tree_path, self.root):
            unique.setdefault(target.id, target)  # a target listed twice is tried once, at its first place
        return Plan(list(unique.values()), walk.experiment, walk.variant, walk.skipped)

    def tags_of(self, provider: str) -> dict[str, str | list[str]]:
        config = self.config.providers.get(provider)
        return config.tags if config is not None else {}

    def unit_price(self, target: PlannedTarget) -> float:
        """Input + output USD per million tokens; unpriced targets rank last (infinity)."""
        cached = self._prices.get(target.id)
        if cached is None:
            price = self.price_of(target.target)
            cached = math.inf if price is None else float(price.input_per_mtok + price.output_per_mtok)
            self._prices[target.id] = cached
        return cached


class _Walk:
    """One request's walk through the tree."""

    def __init__(self, router: Router, facts: RequestFacts, stats: TargetStats, rng: random.Random,
                 access: Access | None = None) -> None:
        self.router = router
        self.facts = facts
        self.stats = stats
        self.rng = rng
        self.access = access
        self.experiment = ""
        self.variant = ""
        self.skipped: dict[str, str] = {}
        self._verdicts: dict[str, str | None] = {}  # provider -> why it does not qualify (None: it does)

    def ruled_out(self, node: SingleNode) -> bool:
        """Whether the request's policy rules this target out (recorded in ``skipped`` if so)."""
        if self.access is None:
            return False
        provider = node.provider
        if provider not in self._verdicts:
            self._verdicts[provider] = disqualification(self.access, provider, self.router.tags_of(provider))
        reason = self._verdicts[provider]
        if reason is None:
            return False
        self.skipped.setdefault(f"{provider}/{node.model}", reason)
        return True

    def expand(self, node: Node, path: str, inherited: _Inherited) -> list[PlannedTarget]:
        settings = inherited.under(node)
        if isinstance(node, SingleNode):
            if self.ruled_out(node):
                return []
            return [PlannedTarget(provider=node.provider, model=node.model, price=node.price, path=path,
                                  retry=settings.retry, timeout_s=settings.timeout_s,
                                  on_status_codes=settings.on_status_codes)]
        if isinstance(node, FallbackNode):
            return [t for i, child in enumerate(node.children)
                    for t in self.expand(child, f"{path}.children.{i}", settings)]
        if isinstance(node, LoadBalanceNode):
            return self._balance(node, path, settings)
        if isinstance(node, ConditionalNode):
            for i, branch in enumerate(node.branches):
                if matches(branch.when, self.facts):
                    return self.expand(branch.route, f"{path}.branches.{i}.route", settings)
            if node.default is not None:
                return self.expand(node.default, f"{path}.default", settings)
            raise InvalidRequest(
                f"No route of model '{self.facts.model}' matches this request (no branch of {path} matched "
                f"and it has no default).", param="model", code="no_matching_route")
        return self._experiment(node, path, settings)

    def _experiment(self, node: ExperimentNode, path: str, settings: _Inherited) -> list[PlannedTarget]:
        key = self.facts.key(node.sticky) if node.sticky else ""
        unit = unit_hash("experiment", node.name, key) if key else self.rng.random()
        outermost = not self.experiment  # nested experiments: the outermost is recorded
        candidates = list(enumerate(node.variants))
        while True:
            total = sum(v.weight for _, v in candidates)
            point = unit * total
            index, chosen = candidates[-1]
            for i, variant in candidates:
                if point < variant.weight:
                    index, chosen = i, variant
                    break
                point -= variant.weight
            # A variant's targets only: falling back into another variant would mix the arms. A variant
            # with no target the request's policy allows is drawn out, and the draw made again.
            targets = self.expand(chosen.route, f"{path}.variants.{index}.route", settings)
            candidates = [(i, v) for i, v in candidates if i != index]
            if targets or not candidates:
                break
        if outermost and targets:
            self.experiment, self.variant = node.name, chosen.name
        return targets

    def _balance(self, node: LoadBalanceNode, path: str, settings: _Inherited) -> list[PlannedTarget]:
        # (index, child, its targets): a child with no target the request's policy allows takes no part
        options = [(i, child, targets) for i, child in enumerate(node.children)
                   if (targets := self.expand(child, f"{path}.children.{i}", settings))]
        key = self.facts.key(node.sticky) if node.sticky else ""

        def draw(i: int, weight: float) -> float:
            # Weighted random order (Efraimidis–Spirakis) or, with a sticky key, weighted rendezvous
            # hashing: a key keeps its child while that child is in the plan, and only the keys of a
            # removed child move. Smaller sorts first.
            u = unit_hash(path, str(i), key) if key else (self.rng.random() or 1e-12)
            return -math.log(u) / weight

        def metric(targets: list[PlannedTarget], weight: float) -> float:
            if key or node.strategy == "weighted" or not targets:
                return 0.0
            if node.strategy == "least_latency":
                known = [x for x in (self.stats.latency_ms(t.id) for t in targets) if x is not None]
                return min(known) if len(known) == len(targets) else -1.0  # unmeasured first: learn it
            if node.strategy == "lowest_cost":
                return min(self.router.unit_price(t) for t in targets)
            return min(self.stats.inflight(t.id) for t in targets) / weight  # least_busy

        ranked = sorted(
            ((metric(targets, child.weight), draw(i, child.weight), targets)
             for i, child, targets in options if child.weight > 0),
            key=lambda r: (r[0], r[1]),
        )
        order = [targets for _, _, targets in ranked]
        order += [targets for _, child, targets in options if child.weight == 0]  # weight 0: failover only
        if not node.failover:
            order = order[:1]
        return [t for targets in order for t in targets]
