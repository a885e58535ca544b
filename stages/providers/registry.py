"""Which adapter speaks to a provider, keyed on the config's ``type``. One line per wire format."""

from __future__ import annotations

from schemas.config import ProviderConfig
from stages.providers.anthropic import AnthropicAdapter
from stages.providers.base import ProviderAdapter
from stages.providers.gemini import GeminiAdapter
from stages.providers.openai_compat import OpenAICompatAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAICompatAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}


def adapter_for(provider: ProviderConfig) -> ProviderAdapter:
    try:
        return ADAPTERS[provider.type]
    except KeyError:
        raise ValueError(f"no adapter for provider type {provider.type!r}") from None
