from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract


class TestOpenRouterContract(ProviderContract):
    provider_type = "openrouter"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {
        "type": "openrouter",
        "headers": {"HTTP-Referer": "https://gateway.example.com", "X-Title": "LLM Gateway"},
    }
    auth_header = "Authorization"
