"""The ``providers`` section of the config: one entry per upstream, its ``type`` choosing the adapter.

Credentials are ``env:NAME`` references (``schemas/secret_refs.py``); OpenAI-compatible servers share
one model whose ``type`` names which one, for its quirks and its default ``base_url``. Every provider
may carry ``tags`` (``region: eu``, ``compliance: [hipaa]``) that tenant policy requires.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.secret_refs import PROVIDER_SECRET


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


TagValue = str | list[str]
"""A provider tag's value: one string (``region: eu``) or several (``compliance: [hipaa, soc2]``)."""


class _ProviderBase(_Strict):
    base_url: str
    api_key: PROVIDER_SECRET = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    batch_discount: float = Field(
        default=0.0, ge=0, lt=1,
        description="the share taken off the price of batch lines (batch jobs, async requests) served by this "
                    "provider, as providers discount their batch APIs: 0.5 records half the cost")
    tags: dict[str, TagValue] = Field(
        default_factory=dict,
        description="what the provider is, for tenant policy: a key, team or tenant may require tags "
                    "(``Access.require_tags``), e.g. ``{region: eu, compliance: [hipaa, soc2]}``")


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
    access_key_id: PROVIDER_SECRET = None
    secret_access_key: PROVIDER_SECRET = None
    session_token: PROVIDER_SECRET = None


ProviderConfig = Annotated[
    OpenAIProvider | AzureOpenAIProvider | AnthropicProvider | GeminiProvider | CohereProvider | BedrockProvider,
    Field(discriminator="type"),
]
