from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract


class TestDeepSeekContract(ProviderContract):
    provider_type = "deepseek"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {"type": "deepseek"}
    auth_header = "Authorization"
