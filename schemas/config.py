"""The gateway's configuration file, as data: validated by these models at load.

``GatewayConfig`` is the whole file: its keys (``ApiKey``, stored as SHA-256 hashes of the gateway
key), the small top-level sections, and the sections with modules of their own, re-exported here:
providers (``config_providers.py``), routing (``config_routing.py``), guardrails
(``config_guardrails.py``), governance (``config_governance.py``). Secrets are never written in the
file: they are references such as ``env:OPENAI_API_KEY`` (``secret_refs.py``), resolved only
by the stage that needs them.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.config_cache import CacheSettings
from schemas.config_governance import AccessRules, GovernanceConfig, LevelRules, LimitsSpec
from schemas.config_guardrails import (
    DEFAULT_ENTITIES,
    NER_DEFAULT_ENTITIES,
    NER_ENTITIES,
    BlockedPattern,
    CustomRecognizer,
    FilterAction,
    GuardrailProfile,
    Guardrails,
    Operator,
    OutputFilter,
    PiiEngine,
    Redaction,
    default_guardrails,
    engine_entities,
)
from schemas.config_providers import (
    OPENAI_COMPATIBLE_DEFAULT_URLS,
    AnthropicProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    CohereProvider,
    GeminiProvider,
    OpenAIProvider,
    ProviderConfig,
)
from schemas.config_routing import CatalogPrice, CircuitBreaker, ModelRoute
from schemas.config_webhooks import WebhooksConfig
from schemas.governance import KV_NAME, KeyCache, KeySecret, VirtualKey
from schemas.governance import Limits as GovLimits
from schemas.guardrails import GuardrailSpec
from schemas.routing import Node, Price, RetryPolicy, SingleNode, Target, walk

__all__ = [
    # defined here
    "AdminApi", "AdminKey", "ApiKey", "GatewayConfig", "Limits", "MockProvider", "Timeouts", "hash_api_key",
    # config_providers.py
    "OPENAI_COMPATIBLE_DEFAULT_URLS", "AnthropicProvider", "AzureOpenAIProvider", "BedrockProvider",
    "CohereProvider", "GeminiProvider", "OpenAIProvider", "ProviderConfig",
    # config_governance.py
    "AccessRules", "GovernanceConfig", "LevelRules", "LimitsSpec",
    # config_routing.py
    "CatalogPrice", "CircuitBreaker", "ModelRoute",
    # config_guardrails.py
    "DEFAULT_ENTITIES", "NER_DEFAULT_ENTITIES", "NER_ENTITIES", "BlockedPattern", "CustomRecognizer",
    "FilterAction", "GuardrailProfile", "Guardrails", "Operator", "OutputFilter", "PiiEngine", "Redaction",
    "default_guardrails", "engine_entities",
    # routing.py
    "Price", "RetryPolicy", "Target",
]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiKey(_Strict):
    id: str = Field(min_length=1)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(min_length=1)
    team: str = Field(default="", description="the team the key belongs to ('' for none): its governance rules apply")
    models: list[str] = Field(default_factory=lambda: ["*"])
    max_input_chars: int = Field(default=200_000, ge=1)
    description: str = ""
    guardrail_profile: str | None = Field(
        default=None, description="a name in guardrail_profiles; wins over the model's own")
    access: AccessRules = Field(default_factory=AccessRules,
                                description="tenant policy of this key: required provider tags, allowed "
                                            "providers, a max_tokens cap (merged with its team's and tenant's)")
    limits: LimitsSpec | None = Field(default=None, description="budget and RPM/TPM of this key")
    cache: CacheSettings | None = Field(default=None, description="the response cache for this key's requests")

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models

    def virtual(self) -> VirtualKey:
        """This key as the ``KeyDirectory`` holds it (``source="config"``: it cannot be revoked, short of
        editing the file)."""
        return VirtualKey(id=self.id, tenant=self.tenant, team=self.team, name=self.description,
                          models=list(self.models), max_input_chars=self.max_input_chars,
                          guardrail_profile=self.guardrail_profile, access=self.access.to_access(),
                          limits=self.limits.to_limits() if self.limits is not None else GovLimits(),
                          secrets=[KeySecret(sha256=self.key_sha256, created_at=0.0)], source="config",
                          cache=KeyCache(**self.cache.model_dump()) if self.cache is not None else None)


class AdminKey(_Strict):
    """One operator's own admin key: the audit log names its caller ``admin-api:<name> via nats:ingress``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$",
                      description="who holds the key (letters, digits, . _ @ + -; at most 64)")
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AdminApi(_Strict):
    """The admin API (``/admin/v1``): enabled by the SHA-256 of an admin key, here (``key_sha256``, or
    one per operator in ``keys``) or in the environment (``GATEWAY_ADMIN_KEY_SHA256``, which replaces
    ``key_sha256``); none set: the API is off. An unnamed key's caller is recorded in the audit log by
    the key's fingerprint (the first 12 hex digits of its SHA-256)."""

    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    keys: list[AdminKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> AdminApi:
        names = [k.name for k in self.keys]
        hashes = [k.key_sha256 for k in self.keys] + ([self.key_sha256] if self.key_sha256 else [])
        if len(set(names)) != len(names):
            raise ValueError("admin.keys: two keys share a name; give each operator their own")
        if len(set(hashes)) != len(hashes):
            raise ValueError("admin.keys: one key_sha256 appears twice; give each operator their own key")
        return self


class Timeouts(_Strict):
    request_s: float = Field(default=120.0, gt=0)


class Limits(_Strict):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class MockProvider(_Strict):
    enabled: bool = False
    port: int = Field(default=8090, ge=1, le=65535)


class GatewayConfig(_Strict):
    version: int = 1
    keys: list[ApiKey] = Field(default_factory=list)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    timeouts: Timeouts = Timeouts()
    redaction: Redaction = Redaction()
    output_filter: OutputFilter = OutputFilter()
    cache: CacheSettings = CacheSettings()
    guardrails: list[GuardrailSpec] = Field(default_factory=default_guardrails)
    guardrail_profiles: dict[str, GuardrailProfile] = Field(default_factory=dict)
    limits: Limits = Limits()
    mock_provider: MockProvider = MockProvider()
    admin: AdminApi = AdminApi()
    # Added to and overriding the shipped catalog (config/prices.yaml); a target's own price wins.
    prices: list[CatalogPrice] = Field(default_factory=list)
    # Team and tenant rules (tenant policy); a key's own rules are on the key.
    governance: GovernanceConfig = GovernanceConfig()
    # async requests' callbacks (x-gateway-callback-url): the allow-list, the signing secret, the retries
    webhooks: WebhooksConfig = WebhooksConfig()

    @model_validator(mode="after")
    def _references_resolve(self) -> GatewayConfig:
        for alias, route in self.models.items():
            if route.targets is not None:
                nodes: list[tuple[str, Node]] = [
                    (f"models.{alias}.targets.{i}", SingleNode(provider=t.provider, model=t.model))
                    for i, t in enumerate(route.targets)]
            else:
                nodes = walk(route.tree, f"models.{alias}.route")
            for path, node in nodes:
                if isinstance(node, SingleNode) and node.provider not in self.providers:
                    raise ValueError(
                        f"{path}.provider: unknown provider {node.provider!r} "
                        f"(known: {', '.join(sorted(self.providers)) or 'none'})"
                    )
        ids = [k.id for k in self.keys]
        if len(ids) != len(set(ids)):
            raise ValueError("keys: key ids must be unique")
        for i, key in enumerate(self.keys):
            if key.team and not KV_NAME.match(key.team):
                raise ValueError(f"keys.{i}.team: {key.team!r} is not a team id ({KV_NAME.pattern})")
        profiles = set(self.guardrail_profiles) | {"default"}
        named = [(f"keys.{i}", k.guardrail_profile) for i, k in enumerate(self.keys)] + \
            [(f"models.{alias}", r.guardrail_profile) for alias, r in self.models.items()]
        for path, profile in named:
            if profile is not None and profile not in profiles:
                raise ValueError(f"{path}.guardrail_profile: unknown profile {profile!r} "
                                 f"(known: {', '.join(sorted(profiles))})")
        rules = [(f"keys.{i}.access", k.access) for i, k in enumerate(self.keys)] + self.governance.rules()
        for path, access in rules:
            unknown = [p for p in access.providers if p not in self.providers]
            if unknown:
                raise ValueError(f"{path}.providers: unknown provider(s) {', '.join(map(repr, unknown))} "
                                 f"(known: {', '.join(sorted(self.providers)) or 'none'})")
        return self

    @cached_property
    def _keys_by_hash(self) -> dict[str, ApiKey]:
        return {k.key_sha256: k for k in self.keys}

    def key_for(self, key_hash: str | None) -> ApiKey | None:
        """The key with this SHA-256 hash, if any (a dict lookup)."""
        return self._keys_by_hash.get(key_hash) if key_hash else None

    @cached_property
    def _profiles(self) -> dict[str, Guardrails]:
        default = Guardrails(profile="default", redaction=self.redaction, output_filter=self.output_filter,
                             guardrails=self.guardrails)
        resolved = {"default": default}
        for name, p in self.guardrail_profiles.items():
            resolved[name] = Guardrails(
                profile=name,
                redaction=p.redaction if p.redaction is not None else self.redaction,
                output_filter=p.output_filter if p.output_filter is not None else self.output_filter,
                guardrails=p.guardrails if p.guardrails is not None else self.guardrails,
            )
        return resolved

    def profile(self, name: str) -> Guardrails:
        """A profile by name; ``default`` (the top-level sections) for an unknown name, which happens
        when a request planned under an older config version meets a newer one."""
        return self._profiles.get(name) or self._profiles["default"]

    @property
    def profiles(self) -> dict[str, Guardrails]:
        """Every profile, resolved, ``default`` included."""
        return dict(self._profiles)

    @cached_property
    def active_profiles(self) -> dict[str, Guardrails]:
        """The profiles a request can resolve to: ``default`` and those a key or a model alias names.
        Stages build scanners (and load the NER engine) only for these: a profile nobody uses costs
        nothing."""
        named = {k.guardrail_profile for k in self.keys} | {r.guardrail_profile for r in self.models.values()}
        return {name: g for name, g in self._profiles.items() if name == "default" or name in named}

    def guardrails_for(self, key_hash: str | None, model: str) -> Guardrails:
        """The settings a request runs with: its key's profile, else its model alias's, else default
        (the config file's keys only; ``guardrails_of`` for a key from the key directory)."""
        key = self.key_for(key_hash)
        return self.guardrails_of(key.guardrail_profile if key is not None else None, model)

    def guardrails_of(self, key_profile: str | None, model: str) -> Guardrails:
        """The settings a request runs with: the key's profile (``key_profile``), else its model alias's,
        else default."""
        if key_profile:
            return self.profile(key_profile)
        route = self.models.get(model)
        if route is not None and route.guardrail_profile:
            return self.profile(route.guardrail_profile)
        return self._profiles["default"]


def hash_api_key(raw_key: str) -> str:
    """How gateway keys are stored and compared: SHA-256 hex of the key as the client sends it."""
    return hashlib.sha256(raw_key.encode()).hexdigest()
