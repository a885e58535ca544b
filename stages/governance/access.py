"""Tenant policy: a key's, team's and tenant's access rules merged into one, and which targets qualify.

Merge rules (``merge_access``), over the levels that have rules (the key always; a team or tenant only
when it has a policy):

- ``require_tags``: the union, value by value: two levels asking ``compliance: hipaa`` and
  ``compliance: soc2`` need a target carrying both (``compliance: [hipaa, soc2]``). Values no target
  can carry together (``region: eu`` and ``region: us``) leave no target: routing refuses the request
  (403 ``policy_denied``), naming each target and what it lacks.
- ``providers``: the intersection of the non-empty lists (an empty list allows every provider). An
  empty intersection is refused the same way.
- ``max_tokens``: the smallest cap set.
- ``allow_unpriced``: only when every level that has rules allows it (a level that does not say so
  forbids: its budget, if any, must not be escaped by a model whose spend cannot be counted).

Qualification (``disqualification``): a target qualifies when its provider is allowed and carries every
required tag with every value asked (a list-valued provider tag qualifies when it contains them all);
otherwise the reason is short and names what was found and what is needed (``region=us, needs eu``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from schemas.errors import InvalidRequest, PermissionDenied
from schemas.governance import Access, LevelPolicy

POLICY_DENIED = "policy_denied"
MAX_TOKENS_EXCEEDED = "max_tokens_exceeded"
MAX_TOKENS_REQUIRED = "max_tokens_required"
MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens")
"""The request fields a ``max_tokens`` cap applies to (OpenAI's two names; Anthropic's is ``max_tokens``)."""

TagValue = str | list[str]


def is_empty(access: Access) -> bool:
    """No rule at all: nothing to put on the envelope, nothing for routing to check."""
    return (not access.require_tags and not access.providers and access.max_tokens is None
            and not access.allow_unpriced)


def merge_access(levels: Iterable[tuple[str, Access]]) -> Access:
    """The effective access of the ``(who, rules)`` levels (``who``: ``"key 'k1'"``, for messages).

    Raises ``PermissionDenied`` (403 ``policy_denied``) when the levels' provider lists have nothing in
    common, so that no target could ever qualify.
    """
    tags: dict[str, list[str]] = {}  # tag -> the values asked, in the order the levels asked them
    providers: list[str] | None = None
    provider_rules: list[str] = []
    max_tokens: int | None = None
    allow_unpriced = True
    seen = False
    for who, access in levels:
        seen = True
        for tag, value in access.require_tags.items():
            asked = tags.setdefault(tag, [])
            asked.extend(v for v in tag_values(value) if v not in asked)
        if access.providers:
            providers = list(access.providers) if providers is None else [
                p for p in providers if p in access.providers]
            provider_rules.append(f"{who} allows {', '.join(access.providers)}")
        if access.max_tokens is not None:
            max_tokens = access.max_tokens if max_tokens is None else min(max_tokens, access.max_tokens)
        allow_unpriced = allow_unpriced and access.allow_unpriced
    if providers is not None and not providers:
        raise PermissionDenied(f"No provider is allowed by every policy that applies: {'; '.join(provider_rules)}.",
                               code=POLICY_DENIED)
    return Access(require_tags={tag: values[0] if len(values) == 1 else values for tag, values in tags.items()},
                  providers=providers or [],
                  max_tokens=max_tokens, allow_unpriced=seen and allow_unpriced)


def tag_values(value: TagValue) -> list[str]:
    """A tag's values: a list-valued tag's, or the one value."""
    return list(value) if isinstance(value, list) else [value]


def show(value: TagValue) -> str:
    """A tag's value as messages write it: ``eu``, ``[hipaa, soc2]``."""
    return f"[{', '.join(value)}]" if isinstance(value, list) else value


def effective_access(levels: Iterable[tuple[str, Access]]) -> Access | None:
    """``merge_access``, or ``None`` when no level has any rule (the envelope then carries none)."""
    merged = merge_access(levels)
    return None if is_empty(merged) else merged


LevelOf = Callable[[Literal["team", "tenant"], str], LevelPolicy | None]
"""Where a team's or tenant's policy is looked up (``GovernanceConfig.level``, ``KeyDirectory.level``)."""


def key_access(key_id: str, access: Access, team: str, tenant: str, level: LevelOf) -> Access | None:
    """The effective access of a key: its own rules, its team's and its tenant's (those that have a
    policy), merged; ``None`` when none has a rule. Raises ``PermissionDenied`` on a contradiction."""
    levels = [(f"key '{key_id}'", access)]
    team_policy = level("team", team) if team else None
    if team_policy is not None:
        levels.append((f"team '{team}'", team_policy.access))
    tenant_policy = level("tenant", tenant) if tenant else None
    if tenant_policy is not None:
        levels.append((f"tenant '{tenant}'", tenant_policy.access))
    return effective_access(levels)


def disqualification(access: Access, provider: str, tags: Mapping[str, TagValue]) -> str | None:
    """Why a target of ``provider`` (carrying ``tags``) does not qualify, or ``None`` when it does."""
    if access.providers and provider not in access.providers:
        return f"provider '{provider}' not allowed"
    reasons: list[str] = []
    for tag, want in access.require_tags.items():
        have = tags.get(tag)
        wanted = ", ".join(tag_values(want))
        if have is None:
            reasons.append(f"no {tag} tag, needs {wanted}")
        elif any(w not in tag_values(have) for w in tag_values(want)):
            reasons.append(f"{tag}={show(have)}, needs {wanted}")
    return "; ".join(reasons) or None


def describe(access: Access) -> str:
    """The rules routing keeps to, for messages: ``requires region=eu; providers: a, b``."""
    parts = []
    if access.require_tags:
        parts.append("requires " + ", ".join(f"{k}={show(v)}" for k, v in access.require_tags.items()))
    if access.providers:
        parts.append("providers: " + ", ".join(access.providers))
    return "; ".join(parts) or "no routing rule"


def no_qualifying_target(model: str, access: Access, skipped: Mapping[str, str]) -> PermissionDenied:
    """The 403 for a request whose every target was ruled out by its policy."""
    ruled_out = ", ".join(f"{target} ({reason})" for target, reason in skipped.items()) or "none"
    return PermissionDenied(
        f"No target of model '{model}' qualifies under this key's policy ({describe(access)}); "
        f"ruled out: {ruled_out}.", param="model", code=POLICY_DENIED)


def check_max_tokens(access: Access | None, body: Mapping[str, Any], endpoint: str) -> None:
    """Refuse (400, never clamp) a request asking for more output tokens than its cap, or for none.

    A request without ``max_tokens`` could produce the model's whole output limit, so under a cap it
    must say how many it wants. Embeddings produce no output tokens: never capped.
    """
    if access is None or access.max_tokens is None or endpoint == "embeddings":
        return
    cap = access.max_tokens
    asked = [(name, body[name]) for name in MAX_TOKENS_FIELDS if body.get(name) is not None]
    if not asked:
        raise InvalidRequest(
            f"This API key's policy caps max_tokens at {cap}: set 'max_tokens' (or 'max_completion_tokens') "
            f"to at most {cap}.", param="max_tokens", code=MAX_TOKENS_REQUIRED)
    for name, value in asked:
        # a value that is not a number is the provider's to refuse; a number above the cap is ours
        if isinstance(value, int | float) and not isinstance(value, bool) and value > cap:
            raise InvalidRequest(
                f"'{name}' is {value!r}, above this API key's cap of {cap}; ask for at most {cap}.",
                param=name, code=MAX_TOKENS_EXCEEDED)
