from __future__ import annotations

import pytest

from schemas.config import GatewayConfig, ProviderConfig
from schemas.errors import InvalidRequest
from stages.providers.embeddings import embeddings_request, embeddings_response


def provider(**kw: object) -> ProviderConfig:
    return GatewayConfig.model_validate({"providers": {"p": kw}}).providers["p"]


BODY = {"model": "alias", "input": ["a", "b"], "dimensions": 256}


def test_openai_compatible() -> None:
    call = embeddings_request(provider(type="mistral"), "mistral-embed", BODY, api_key="k")
    assert call.url == "https://api.mistral.ai/v1/embeddings"
    assert call.headers["Authorization"] == "Bearer k" and call.json == {**BODY, "model": "mistral-embed"}


def test_azure_deployment_url_and_key() -> None:
    p = provider(type="azure", base_url="https://res.openai.azure.com/", api_version="2024-10-21")
    call = embeddings_request(p, "my embedder", BODY, api_key="k")
    assert call.url == "https://res.openai.azure.com/openai/deployments/my%20embedder/embeddings?api-version=2024-10-21"
    assert call.headers["api-key"] == "k" and "model" not in (call.json or {})


def test_gemini_batch_embed() -> None:
    p = provider(type="gemini")
    call = embeddings_request(p, "text-embedding-004", BODY, api_key="k")
    assert call.url.endswith("/v1beta/models/text-embedding-004:batchEmbedContents")
    assert call.json == {"requests": [
        {"model": "models/text-embedding-004", "outputDimensionality": 256, "content": {"parts": [{"text": t}]}}
        for t in ("a", "b")]}
    translated = embeddings_response(p, {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3]}]},
                                     model="text-embedding-004")
    assert [d["embedding"] for d in translated["data"]] == [[0.1, 0.2], [0.3]]
    with pytest.raises(InvalidRequest):
        embeddings_request(p, "m", {"input": [[1, 2, 3]]}, api_key=None)  # token ids: text only


def test_other_providers_say_unsupported() -> None:
    with pytest.raises(InvalidRequest) as err:
        embeddings_request(provider(type="anthropic"), "claude", BODY, api_key=None)
    assert err.value.code == "provider_unsupported"
