"""OpenAI ``POST /v1/embeddings``: one deterministic vector per input (from the text's SHA-256), so a
test can tell which text was embedded, e.g. that the gateway sent a placeholder, not the PII."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, WireError
from infra.doubles.mock_provider.openai_wire import error_body

DIMENSIONS = 8


def vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:DIMENSIONS]]


class EmbeddingsWire:
    name = "openai-embeddings"

    def parse(self, body: Any, route: Route) -> Prompt:
        if not isinstance(body, dict):
            raise WireError("The request body must be a JSON object.")
        model, inputs = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            raise WireError("you must provide a model parameter")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise WireError("'input' must be a non-empty string or array of strings")
        return Prompt(model=model, texts=list(texts), last_user=texts[-1])

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes:
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(prompt.texts)]
        usage = {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens}
        return orjson.dumps({"object": "list", "data": data, "model": prompt.model, "usage": usage})

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]:
        raise WireError("embeddings do not stream")

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)


WIRE = EmbeddingsWire()
