"""``gateway replay --dry-run``: the route a logged request would take under a config, planned with the
routing stage's own pure logic and no provider called.

Why ``stages.routing.Router`` itself (an exception to the import rules, recorded in
``tests/unit/test_import_rules.py``): a dry run that re-implemented planning would answer a question
nobody asked. The price lookup is the routing worker's (``workers/routing.py: build_router``): the
shipped catalog under the config's ``prices``, through ``infra.bootstrap.price_book``.

What the dry run cannot see, said in ``PlannedRoute.notes`` rather than guessed:

- the request's ``x-*`` headers (never recorded): conditions and sticky keys on headers see none;
- live latency and in-flight counts (``least_latency``, ``least_busy``): every target reads as unmeasured;
- random draws (``loadbalance`` or ``experiment`` without a sticky key): planned with a seed taken from
  the request id (the same answer every time), and flagged when other seeds start elsewhere;
- the text before redaction: conditions on prompt length estimate it from the redacted body (placeholders
  such as ``<PERSON_1>`` instead of the values), which can move a request across a threshold at its edge;
- a key that is not in the config file (made with ``gateway keys create``, kept in ``GW_KEYS``): its
  tenant policy is not applied.

Breaker states, when the caller could read them (``replay_breakers.py``), are applied as the routing
worker applies them: an open target is dropped, a half-open one would be probed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra import bootstrap
from infra.key_directory import config_directory
from infra.operator.replay_record import LoggedRequest
from schemas.config import GatewayConfig
from schemas.errors import GatewayError
from schemas.governance import Access
from stages.governance.access import key_access
from stages.routing import Plan, RequestFacts, Router

OTHER_SEEDS = 4
"""How many other draws decide whether the plan depends on chance."""


@dataclass(frozen=True)
class PlannedStep:
    """One target of the plan: its id, where in the tree it came from, and its breaker's state."""

    target: str
    path: str
    breaker: str = "closed"
    """``closed``, ``open`` (dropped), ``half_open`` (this request would probe it) or ``unknown``."""

    @property
    def kept(self) -> bool:
        return self.breaker != "open"


@dataclass(frozen=True)
class PlannedRoute:
    """The dry run's answer: the plan (first choice first), or the error the routing stage would give."""

    config_version: str
    config_source: str
    steps: list[PlannedStep] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    experiment: str = ""
    variant: str = ""
    error_status: int = 0
    """The status the chain would answer when it refuses (``404``), ``0`` when it plans."""
    error_code: str = ""
    error: str = ""
    """The refusal's message, ``""`` when it plans."""
    notes: list[str] = field(default_factory=list)

    @property
    def first(self) -> str:
        """The target the request would be sent to first, ``""`` when none."""
        return next((s.target for s in self.steps if s.kept), "")

    @property
    def path(self) -> str:
        return next((s.path for s in self.steps if s.kept), "")


def facts_of(logged: LoggedRequest) -> RequestFacts:
    """What conditions and sticky keys look at, from the row (``workers/routing.py: facts_of`` reads the
    same fields from the envelope; headers are never recorded)."""
    return RequestFacts(model=logged.model_requested, endpoint=logged.endpoint, stream=logged.stream,
                        tenant=logged.tenant, api_key=logged.api_key_id, user=logged.user, tags=logged.tags,
                        headers={}, body=logged.body())


def build_router(config: GatewayConfig) -> Router:
    """The routing worker's ``build_router``: prices from the catalog under the config's ``prices``."""
    book = bootstrap.price_book(config)
    return Router(config, lambda target: book.price_for(
        target, config.providers[target.provider].type if target.provider in config.providers else target.provider))


def seed_of(request_id: str) -> int:
    return int(request_id.replace("-", ""), 16) if request_id else 0


def access_for(config: GatewayConfig, api_key_id: str) -> tuple[Access | None, str]:
    """The key's merged tenant policy from the config file (as the policy stage merges it), and a note
    (``""`` when none is due); ``PermissionDenied`` when its rules contradict each other."""
    if not api_key_id:
        return None, ""
    directory = config_directory(config)
    key = directory.by_id(api_key_id)
    if key is None:
        return None, (f"key '{api_key_id}' is not in this config file (a key from `gateway keys create`?): "
                      "its tenant policy is not applied to the dry run")
    return key_access(key.id, key.access, key.team, key.tenant, directory.level), ""


def plan_route(config: GatewayConfig, logged: LoggedRequest, *, version: str, source: str,
               breakers: Mapping[str, str] | None = None) -> PlannedRoute:
    """The route ``logged`` would take under ``config``. ``breakers``: target id -> state (``None``: the
    states could not be read, every target reads ``unknown``)."""
    notes = ["request headers are not recorded: routing conditions and sticky keys on headers see none"]
    try:
        access, note = access_for(config, logged.api_key_id)
    except GatewayError as exc:
        return _refused(version, source, exc, notes)
    if note:
        notes.append(note)
    router = build_router(config)
    facts = facts_of(logged)
    try:
        plan = router.plan(facts, rng=random.Random(seed_of(logged.request_id)), access=access)
        others = {_first(router.plan(facts, rng=random.Random(seed_of(logged.request_id) + i), access=access))
                  for i in range(1, OTHER_SEEDS + 1)}
    except GatewayError as exc:
        return _refused(version, source, exc, notes)
    if others - {_first(plan)}:
        notes.append("the plan depends on a random draw (loadbalance or experiment without a sticky key, or "
                     "latency/load figures the dry run does not have): another request may start elsewhere")
    if breakers is None:
        notes.append("breaker states not read (the credentials cannot read GW_BREAKERS): planned as if closed")
    steps = [PlannedStep(t.id, t.path, "unknown" if breakers is None else breakers.get(t.id, "closed"))
             for t in plan.targets]
    refusal: tuple[int, str, str] = (0, "", "")
    if access is not None and not plan.targets:
        refusal = (403, "policy_denied", "the key's tenant policy rules out every target of the model")
    elif steps and not any(s.kept for s in steps):
        refusal = (503, "circuit_open", "every target's circuit breaker is open")
    return PlannedRoute(version, source, steps, dict(plan.skipped), plan.experiment, plan.variant, *refusal, notes)


def _refused(version: str, source: str, exc: GatewayError, notes: list[str]) -> PlannedRoute:
    return PlannedRoute(version, source, error_status=exc.status_code, error_code=exc.code or exc.type,
                        error=exc.message, notes=notes)


def _first(plan: Plan) -> str:
    return plan.targets[0].id if plan.targets else ""
