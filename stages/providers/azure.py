"""Azure OpenAI Chat Completions: OpenAI's body, responses, chunks and error bodies, sent to a deployment.

``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={api_version}`` with
the key in ``api-key``; the target ``model`` is the deployment name, so the body carries no ``model``.
Everything else (streams with ``stream_options.include_usage``, ``content_filter`` finish reasons,
``retry-after-ms`` on 429) is the OpenAI adapter's, with the ``AZURE`` quirks.
"""

from __future__ import annotations

import urllib.parse

from schemas.config import AzureOpenAIProvider, ProviderConfig
from stages.providers.openai_compat import OpenAICompatAdapter
from stages.providers.openai_quirks import AZURE


class AzureOpenAIAdapter(OpenAICompatAdapter):
    def __init__(self) -> None:
        super().__init__(AZURE)

    def url(self, provider: ProviderConfig, model: str) -> str:
        if not isinstance(provider, AzureOpenAIProvider):
            raise TypeError(f"the Azure OpenAI adapter needs an azure provider, got {provider.type!r}")
        deployment = urllib.parse.quote(model, safe="")
        version = urllib.parse.quote(provider.api_version, safe="")
        return (
            f"{provider.base_url.rstrip('/')}/openai/deployments/{deployment}/chat/completions"
            f"?api-version={version}"
        )

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"api-key": api_key} if api_key else {}
