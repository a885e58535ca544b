"""Embeddings: the canonical request is OpenAI's ``/v1/embeddings`` body (``model``, ``input`` as a
string or a list of strings, ``dimensions``, ``encoding_format``, ``user``); the canonical response is
OpenAI's ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}``.

Served by every OpenAI-compatible type, Azure OpenAI and Gemini (``batchEmbedContents``); any other
type answers ``provider_unsupported`` (the next target is tried).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from schemas.config import OPENAI_COMPATIBLE_DEFAULT_URLS, ProviderConfig
from schemas.errors import InvalidRequest
from stages.providers.base import HttpCall


def embeddings_request(provider: ProviderConfig, model: str, body: Mapping[str, Any], *,
                       api_key: str | None) -> HttpCall:
    headers = dict(provider.headers)
    base = provider.base_url.rstrip("/")
    if provider.type in OPENAI_COMPATIBLE_DEFAULT_URLS:
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return HttpCall("POST", f"{base}/embeddings", headers, {**body, "model": model})
    if provider.type == "azure":
        if api_key:
            headers["api-key"] = api_key
        payload = {k: v for k, v in body.items() if k != "model"}
        url = f"{base}/openai/deployments/{quote(model, safe='')}/embeddings?api-version={provider.api_version}"
        return HttpCall("POST", url, headers, payload)
    if provider.type == "gemini":
        if api_key:
            headers["x-goog-api-key"] = api_key
        name = model.removeprefix("models/")
        texts = _texts(body.get("input"))
        request: dict[str, Any] = {"model": f"models/{name}"}
        if isinstance(body.get("dimensions"), int):
            request["outputDimensionality"] = body["dimensions"]
        requests = [{**request, "content": {"parts": [{"text": t}]}} for t in texts]
        return HttpCall("POST", f"{base}/v1beta/models/{name}:batchEmbedContents", headers, {"requests": requests})
    raise InvalidRequest(f"provider type {provider.type!r} does not serve embeddings through the gateway",
                         code="provider_unsupported")


def embeddings_response(provider: ProviderConfig, data: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    if provider.type == "gemini":
        vectors = [e.get("values") or [] for e in data.get("embeddings") or []]
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}
    return dict(data)  # OpenAI and Azure answer the canonical shape


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequest("this provider embeds text only: 'input' must be a string or a list of strings",
                         param="input")
