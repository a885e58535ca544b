from __future__ import annotations

from typing import Any, ClassVar

from stages.providers.azure import AzureOpenAIAdapter

from .contract_base import ProviderContract


class TestAzureContract(ProviderContract):
    provider_type = "azure"
    adapter_class = AzureOpenAIAdapter
    config: ClassVar[dict[str, Any]] = {
        "type": "azure",
        "base_url": "https://contoso.openai.azure.com/",
        "api_version": "2024-10-21",
    }
    auth_header = "api-key"

    def test_api_version_and_deployment_come_from_config_and_target(self) -> None:
        call = self.adapter.to_provider_request(
            self.provider(api_version="2025-01-01-preview"), "team a/gpt-4o", {"messages": []}, stream=False,
            api_key="k",
        )
        assert call.url == (
            "https://contoso.openai.azure.com/openai/deployments/team%20a%2Fgpt-4o/chat/completions"
            "?api-version=2025-01-01-preview"
        )
        assert "Authorization" not in call.headers and call.json == {"messages": []}
