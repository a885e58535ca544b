from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract


class TestTogetherContract(ProviderContract):
    provider_type = "together"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {"type": "together"}
    auth_header = "Authorization"
