"""The gateway's configuration file, as data: validated by these models at load.

Secrets are never written in the file: they are references such as ``env:OPENAI_API_KEY``,
resolved only by the provider stage. Keys are stored as SHA-256 hashes of the gateway key.
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.guardrails import GuardrailSpec
from schemas.routing import (
    FallbackNode,
    Node,
    Price,
    RetryPolicy,
    SingleNode,
    Target,
    walk,
)

__all__ = ["Price", "RetryPolicy", "Target"]

_SECRET_REF = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_secret_ref(value: str | None) -> str | None:
    if value is not None and not _SECRET_REF.match(value):
        raise ValueError("secrets are referenced as 'env:NAME', never written in the config file")
    return value


class ApiKey(_Strict):
    id: str = Field(min_length=1)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(min_length=1)
    models: list[str] = Field(default_factory=lambda: ["*"])
    max_input_chars: int = Field(default=200_000, ge=1)
    description: str = ""
    guardrail_profile: str | None = Field(
        default=None, description="a name in guardrail_profiles; wins over the model's own")

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models


class _ProviderBase(_Strict):
    base_url: str
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)

    @field_validator("api_key")
    @classmethod
    def _secret_is_a_reference(cls, value: str | None) -> str | None:
        return _check_secret_ref(value)


OPENAI_COMPATIBLE_DEFAULT_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together": "https://api.together.xyz/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": "http://127.0.0.1:8000/v1",
}
"""Every OpenAI-compatible provider type and its default ``base_url`` (the adapter factory handles
each one's quirks)."""


class OpenAIProvider(_ProviderBase):
    """An OpenAI-compatible Chat Completions server; ``type`` names which one, for its quirks."""

    type: Literal["openai", "mistral", "groq", "together", "deepseek", "openrouter", "ollama", "vllm"]
    base_url: str = ""

    @model_validator(mode="after")
    def _default_url(self) -> OpenAIProvider:
        if not self.base_url:
            object.__setattr__(self, "base_url", OPENAI_COMPATIBLE_DEFAULT_URLS[self.type])
        return self


class AzureOpenAIProvider(_ProviderBase):
    """Azure OpenAI: ``base_url`` is the resource endpoint (``https://<resource>.openai.azure.com``);
    a target's ``model`` is the deployment name; the key goes in the ``api-key`` header."""

    type: Literal["azure"]
    api_version: str = "2024-10-21"


class AnthropicProvider(_ProviderBase):
    type: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(default=4096, ge=1)


class GeminiProvider(_ProviderBase):
    type: Literal["gemini"]
    base_url: str = "https://generativelanguage.googleapis.com"


class CohereProvider(_ProviderBase):
    """Cohere v2 Chat (``POST /v2/chat``)."""

    type: Literal["cohere"]
    base_url: str = "https://api.cohere.com"


class BedrockProvider(_ProviderBase):
    """AWS Bedrock Converse, SigV4-signed with the keys referenced here (or a Bedrock API key in
    ``api_key``); ``base_url`` defaults to ``https://bedrock-runtime.{region}.amazonaws.com``."""

    type: Literal["bedrock"]
    region: str = Field(min_length=1)
    base_url: str = ""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @field_validator("access_key_id", "secret_access_key", "session_token")
    @classmethod
    def _secret_refs(cls, value: str | None) -> str | None:
        return _check_secret_ref(value)


ProviderConfig = Annotated[
    OpenAIProvider | AzureOpenAIProvider | AnthropicProvider | GeminiProvider | CohereProvider | BedrockProvider,
    Field(discriminator="type"),
]


class CatalogPrice(Price):
    """One entry of the price catalog: ``provider`` is a provider *type* (``openai``, ``anthropic``,
    ...) or the name of a configured provider (which wins over its type)."""

    provider: str
    model: str


class ModelRoute(_Strict):
    """How one model alias is served: a routing ``route`` tree (see ``schemas/routing.py``), or the
    shorthand ``targets`` (an ordered fallback list)."""

    route: Node | None = None
    targets: list[Target] | None = Field(default=None, min_length=1)
    guardrail_profile: str | None = Field(
        default=None, description="a name in guardrail_profiles, for requests to this alias")

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


class Timeouts(_Strict):
    request_s: float = Field(default=120.0, gt=0)


PiiEngine = Literal["pattern", "ner"]
"""``pattern``: presidio's regex/checksum recognizers only (≈ 0.1–4 ms a prompt); ``ner``: the same plus
spaCy ``en_core_web_sm`` named entities (PERSON, LOCATION, ...; ≈ 10–25 ms a prompt)."""

Operator = Literal["placeholder", "mask", "hash", "block"]
"""What redaction does with a value: ``placeholder`` ``<EMAIL_ADDRESS_1>`` (restored in the answer),
``mask`` ``****1111`` (last characters kept), ``hash`` ``<EMAIL_ADDRESS:9f86d081884c>`` (salted HMAC,
stable per tenant, never restored), ``block`` (the request is refused: 400 ``pii_blocked``)."""

DEFAULT_ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]
"""What the pattern engine finds by default (and the only built-ins it can find)."""
NER_DEFAULT_ENTITIES = ["PERSON", "LOCATION"]
"""What the NER engine adds by default."""
NER_ENTITIES = ["PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"]
"""Every entity the NER engine can find besides the pattern ones."""


def engine_entities(engine: PiiEngine) -> list[str]:
    """Every built-in entity ``engine`` can find."""
    return DEFAULT_ENTITIES + (NER_ENTITIES if engine == "ner" else [])


class CustomRecognizer(_Strict):
    """A configured entity: a regex (optionally boosted by context words just before a match) and/or
    a deny list of exact words or phrases (case-insensitive, whole words)."""

    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    pattern: str | None = None
    deny_list: list[str] = Field(default_factory=list)
    score: float = Field(default=0.8, gt=0, le=1)
    context: list[str] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _something_to_find(self) -> CustomRecognizer:
        if self.pattern is None and not self.deny_list:
            raise ValueError("a custom recognizer needs a 'pattern', a 'deny_list', or both")
        return self


def _check_entities(entities: list[str] | None, engine: PiiEngine, custom: list[str]) -> None:
    if entities is None:
        return
    known = set(engine_entities(engine)) | set(custom)
    unknown = [e for e in entities if e not in known]
    if unknown:
        hint = " (PERSON, LOCATION, ... need engine: ner)" if set(unknown) & set(NER_ENTITIES) else ""
        raise ValueError(f"entities: no recognizer for {unknown} with engine {engine!r}{hint}; "
                         f"known: {sorted(known)}")


class Redaction(_Strict):
    enabled: bool = True
    engine: PiiEngine = "pattern"
    entities: list[str] | None = Field(
        default=None, description="built-in entities to find; default: the engine's defaults")
    score_threshold: float = Field(default=0.4, ge=0, le=1)
    allow_list: list[str] = Field(
        default_factory=list, description="values never redacted (exact, case-insensitive)")
    allow_patterns: list[str] = Field(
        default_factory=list, description="regexes: a value matching one in full is never redacted")
    operator: Operator = "placeholder"
    operators: dict[str, Operator] = Field(default_factory=dict, description="per entity type, wins over operator")
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    mask_keep_last: int = Field(
        default=4, ge=0, description="letters/digits left visible at the end of a masked value (at most half)")
    hash_salt: str | None = Field(
        default=None, description="env:NAME of the salt; default: derived from the gateway's sealing key")
    restore: bool = True
    custom: list[CustomRecognizer] = Field(default_factory=list)

    @field_validator("hash_salt")
    @classmethod
    def _salt_is_a_reference(cls, value: str | None) -> str | None:
        return _check_secret_ref(value)

    @field_validator("allow_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            re.compile(pattern)
        return value

    @model_validator(mode="after")
    def _entities_known(self) -> Redaction:
        _check_entities(self.entities, self.engine, [c.entity for c in self.custom])
        unknown = set(self.operators) - set(self.entity_types)
        if unknown:
            raise ValueError(f"operators: {sorted(unknown)} are not among the entities found")
        return self

    @property
    def entity_types(self) -> list[str]:
        """Every entity type this redaction finds: the built-ins chosen, then the custom ones."""
        builtin = self.entities if self.entities is not None else (
            DEFAULT_ENTITIES + (NER_DEFAULT_ENTITIES if self.engine == "ner" else []))
        return list(dict.fromkeys([*builtin, *(c.entity for c in self.custom)]))

    def operator_for(self, entity_type: str) -> Operator:
        return self.operators.get(entity_type, self.operator)


FilterAction = Literal["redact", "block", "flag"]


class BlockedPattern(_Strict):
    name: str
    pattern: str
    action: FilterAction = "block"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class OutputFilter(_Strict):
    enabled: bool = True
    engine: PiiEngine = "pattern"
    pii_action: Literal["redact", "block", "flag", "off"] = "redact"
    entities: list[str] | None = Field(
        default=None, description="built-in entities to find; default: the engine's defaults")
    blocked: list[BlockedPattern] = Field(default_factory=list)
    window_chars: int = Field(default=64, ge=8, le=4096)

    @model_validator(mode="after")
    def _entities_known(self) -> OutputFilter:
        _check_entities(self.entities, self.engine, [])
        return self

    @property
    def entity_types(self) -> list[str]:
        """The built-in entity types scanned for (the profile's custom recognizers come on top)."""
        if self.entities is not None:
            return list(self.entities)
        return DEFAULT_ENTITIES + (NER_DEFAULT_ENTITIES if self.engine == "ner" else [])


def default_guardrails() -> list[GuardrailSpec]:
    """On unless a config says otherwise: prompt-injection rules and the response_format check, both
    recording (``flag``) rather than blocking."""
    return [GuardrailSpec(use="prompt_injection", action="flag", threshold=0.5),
            GuardrailSpec(use="response_format", action="flag", threshold=0.5)]


class GuardrailProfile(_Strict):
    """A named set of guardrail settings, chosen per key or per model alias. A section left out is
    the top-level one; a section given replaces it whole."""

    redaction: Redaction | None = None
    output_filter: OutputFilter | None = None
    guardrails: list[GuardrailSpec] | None = None


class Guardrails(_Strict):
    """The settings one request runs with (``GatewayConfig.guardrails_for``)."""

    profile: str
    redaction: Redaction
    output_filter: OutputFilter
    guardrails: list[GuardrailSpec]

    def phase(self, phase: Literal["input", "output"], kinds: dict[str, str]) -> list[GuardrailSpec]:
        """The specs whose implementation runs in ``phase``; ``kinds`` maps ``use`` to its phase."""
        return [g for g in self.guardrails if kinds.get(g.use) == phase]


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
    guardrails: list[GuardrailSpec] = Field(default_factory=default_guardrails)
    guardrail_profiles: dict[str, GuardrailProfile] = Field(default_factory=dict)
    limits: Limits = Limits()
    mock_provider: MockProvider = MockProvider()
    # Added to and overriding the shipped catalog (config/prices.yaml); a target's own price wins.
    prices: list[CatalogPrice] = Field(default_factory=list)

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
        profiles = set(self.guardrail_profiles) | {"default"}
        named = [(f"keys.{i}", k.guardrail_profile) for i, k in enumerate(self.keys)] + \
            [(f"models.{alias}", r.guardrail_profile) for alias, r in self.models.items()]
        for path, profile in named:
            if profile is not None and profile not in profiles:
                raise ValueError(f"{path}.guardrail_profile: unknown profile {profile!r} "
                                 f"(known: {', '.join(sorted(profiles))})")
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
        """The settings a request runs with: its key's profile, else its model alias's, else default."""
        key = self.key_for(key_hash)
        if key is not None and key.guardrail_profile:
            return self.profile(key.guardrail_profile)
        route = self.models.get(model)
        if route is not None and route.guardrail_profile:
            return self.profile(route.guardrail_profile)
        return self._profiles["default"]


def hash_api_key(raw_key: str) -> str:
    """How gateway keys are stored and compared: SHA-256 hex of the key as the client sends it."""
    return hashlib.sha256(raw_key.encode()).hexdigest()
