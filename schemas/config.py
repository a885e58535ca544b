"""The gateway's configuration file, as data: validated by these models at load.

Secrets are never written in the file: they are references such as ``env:OPENAI_API_KEY``,
resolved only by the provider stage. Keys are stored as SHA-256 hashes of the gateway key.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Price(_Strict):
    """USD per million tokens. ``cached_input_per_mtok``: for prompt tokens the provider served from
    its prompt cache (when absent, they cost the input price)."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)


class CatalogPrice(Price):
    """One entry of the price catalog: ``provider`` is a provider *type* (``openai``, ``anthropic``,
    ...) or the name of a configured provider (which wins over its type)."""

    provider: str
    model: str


class Target(_Strict):
    provider: str
    model: str
    price: Price | None = None


class ModelRoute(_Strict):
    targets: list[Target] = Field(min_length=1)


class RetryPolicy(_Strict):
    attempts_per_target: int = Field(default=2, ge=1, le=10)
    base_delay_ms: float = Field(default=100, ge=0)
    max_delay_ms: float = Field(default=2_000, ge=0)
    max_retry_after_s: float = Field(default=10, ge=0)
    total_backoff_cap_ms: float = Field(default=10_000, ge=0)


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
            for i, target in enumerate(route.targets):
                if target.provider not in self.providers:
                    raise ValueError(
                        f"models.{alias}.targets.{i}.provider: unknown provider {target.provider!r} "
                        f"(known: {', '.join(sorted(self.providers)) or 'none'})"
                    )
        ids = [k.id for k in self.keys]
        if len(ids) != len(set(ids)):
            raise ValueError("keys: key ids must be unique")
        return self


def hash_api_key(raw_key: str) -> str:
    """How gateway keys are stored and compared: SHA-256 hex of the key as the client sends it."""
    return hashlib.sha256(raw_key.encode()).hexdigest()
