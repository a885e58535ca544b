"""The gateway's configuration file, as data: validated by these models at load.

Secrets are never written in the file: they are references such as ``env:OPENAI_API_KEY``,
resolved only by the provider stage. Keys are stored as SHA-256 hashes of the gateway key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class CustomRecognizer(_Strict):
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    pattern: str
    score: float = Field(default=0.8, gt=0, le=1)
    context: list[str] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


DEFAULT_ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


class Redaction(_Strict):
    enabled: bool = True
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    score_threshold: float = Field(default=0.4, ge=0, le=1)
    restore: bool = True
    custom: list[CustomRecognizer] = Field(default_factory=list)


class BlockedPattern(_Strict):
    name: str
    pattern: str
    action: Literal["redact", "block"] = "block"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class OutputFilter(_Strict):
    enabled: bool = True
    pii_action: Literal["redact", "block", "off"] = "redact"
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    blocked: list[BlockedPattern] = Field(default_factory=list)
    window_chars: int = Field(default=64, ge=8, le=4096)


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
        return self


def hash_api_key(raw_key: str) -> str:
    """How gateway keys are stored and compared: SHA-256 hex of the key as the client sends it."""
    return hashlib.sha256(raw_key.encode()).hexdigest()
