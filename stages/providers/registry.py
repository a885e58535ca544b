"""Which adapter speaks to a provider, keyed on the config's ``type``. One line per provider type;
OpenAI-compatible types are the one adapter with that provider's quirks (``openai_quirks.py``)."""

from __future__ import annotations

from schemas.config import ProviderConfig
from stages.providers import openai_quirks as quirks
from stages.providers.anthropic import AnthropicAdapter
from stages.providers.azure import AzureOpenAIAdapter
from stages.providers.base import ProviderAdapter
from stages.providers.bedrock import BedrockAdapter
from stages.providers.cohere import CohereAdapter
from stages.providers.gemini import GeminiAdapter
from stages.providers.openai_compat import OpenAICompatAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAICompatAdapter(quirks.OPENAI),
    "mistral": OpenAICompatAdapter(quirks.MISTRAL),
    "groq": OpenAICompatAdapter(quirks.GROQ),
    "together": OpenAICompatAdapter(quirks.TOGETHER),
    "deepseek": OpenAICompatAdapter(quirks.DEEPSEEK),
    "openrouter": OpenAICompatAdapter(quirks.OPENROUTER),
    "ollama": OpenAICompatAdapter(quirks.OLLAMA),
    "vllm": OpenAICompatAdapter(quirks.VLLM),
    "azure": AzureOpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
    "cohere": CohereAdapter(),
    "bedrock": BedrockAdapter(),
}


def adapter_for(provider: ProviderConfig) -> ProviderAdapter:
    try:
        return ADAPTERS[provider.type]
    except KeyError:
        raise ValueError(f"no adapter for provider type {provider.type!r}") from None
