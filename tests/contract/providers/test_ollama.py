from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract


class TestOllamaContract(ProviderContract):
    provider_type = "ollama"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {"type": "ollama"}
    auth_header = "Authorization"
