from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract


class TestMistralContract(ProviderContract):
    provider_type = "mistral"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {"type": "mistral"}
    auth_header = "Authorization"
