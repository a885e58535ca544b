"""The response cache (exact): what a request's key is, what an entry holds, and how a cached answer is
streamed again.

**Keyed on the redacted request.** The key hashes the tenant, the model alias and every field of the
body that shapes the answer, as the provider saw it: messages after redaction (placeholders such as
``<EMAIL_ADDRESS_1>`` instead of the values), tools, ``response_format``, temperature, ``top_p``, seed,
``max_tokens``, stop, ``n``… Fields that do not shape the answer are left out (``VOLATILE``: ``user``,
``metadata``, ``stream``, ``stream_options``, ``store``…), so a streamed and a whole request share an
entry. Two prompts that differ only in a redacted value share one entry, and the tenant is part of the
key: never an answer across tenants.

**An entry holds no PII.** It is written by the output filter from the answer it sent, filtered (PII the
model produced is already replaced) and with the request's values concealed again as its placeholders
(``stages/answers.py`` ``stored_answer``); a hit's placeholders are restored with the *current* request's
values by the output filter, like any answer.

**Where the lookup lives.** The policy stage decides whether a request may use the cache (the key's
settings win over the alias's and the config's, plus the caller's ``x-gateway-cache`` /
``Cache-Control``) and writes its key on the envelope; the provider stage looks the key up just before
it would call: a hit is handed to the output filter as the provider's answer would be (a stream as a
stream). So a hit still passes policy (keys, access, limits), routing (its plan is recorded), the output
filter and the recording, and costs a bucket read instead of a provider call.

Statuses (``requests.cache``, the ``x-gateway-cache`` answer header): ``hit``; ``miss`` (looked up, not
found: the answer is stored); ``refresh`` (``x-gateway-cache: refresh``: not looked up, stored);
``bypass`` (``no-cache``: neither); ``''`` when the cache is off. ``no-store`` looks up but never stores.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.cache import key_token
from schemas.config import GatewayConfig
from schemas.governance import VirtualKey
from stages.providers.base import StreamState
from stages.providers.chunks import ChunkBuilder

VOLATILE = frozenset({"user", "metadata", "stream", "stream_options", "store", "service_tier",
                      "safety_identifier", "prompt_cache_key", "prompt_cache_retention"})
"""Body fields that do not shape the answer: left out of the key."""
STREAM_PIECE_CHARS = 16
"""A cached answer streams again in pieces of about this many characters, at once."""


@dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache does for one request."""

    status: str  # "", "miss", "refresh", "bypass" (a hit is decided at the lookup)
    key: str = ""
    ttl_s: int = 0
    max_entry_bytes: int = 0
    scope: str = ""  # semantic mode, a request with a question (``question_of``): where it is compared
    similarity: float = 0.0

    @property
    def looks_up(self) -> bool:
        return self.status == "miss"

    @property
    def stores(self) -> bool:
        return self.status in ("miss", "refresh")


OFF = CachePlan("")


def plan_for(config: GatewayConfig, key: VirtualKey | None, alias: str, body: dict[str, Any], tenant: str,
             directive: str) -> CachePlan:
    """The cache plan of a request: the key's settings, else its alias's, else the config's; the
    caller's directive on top (``no-store`` is kept apart by the output filter: ``stores`` says no)."""
    route = config.models.get(alias)
    chosen = key.cache if key is not None and key.cache is not None else None
    settings = chosen if chosen is not None else (
        route.cache if route is not None and route.cache else config.cache)
    if settings.mode not in ("exact", "semantic"):
        return OFF
    if directive == "no-cache":
        return CachePlan("bypass")
    status = "refresh" if directive == "refresh" else "miss"
    semantic = settings.mode == "semantic" and question_of(body) is not None
    return CachePlan(status, cache_key(tenant, alias, body), settings.ttl_s,
                     0 if directive == "no-store" else settings.max_entry_bytes,
                     scope_of(tenant, alias, body) if semantic else "", settings.similarity if semantic else 0.0)


def semantic_configured(config: GatewayConfig) -> bool:
    """Whether the config asks for the semantic cache anywhere (a provider replica then loads the model
    at start; a key that asks for it starts it on its first request)."""
    return config.cache.mode == "semantic" or any(
        route.cache is not None and route.cache.mode == "semantic" for route in config.models.values()) or any(
        key.cache is not None and key.cache.mode == "semantic" for key in config.keys)


def cache_key(tenant: str, alias: str, body: dict[str, Any]) -> str:
    """``<tenant>.<alias>.<hash of what shapes the answer>`` (module doc)."""
    shaped = {k: v for k, v in body.items() if k not in VOLATILE}
    digest = hashlib.blake2b(orjson.dumps(shaped, option=orjson.OPT_SORT_KEYS), digest_size=20).hexdigest()
    return f"{key_token(tenant)}.{key_token(alias)}.{digest}"


def question_of(body: dict[str, Any]) -> str | None:
    """The text the semantic cache compares: the last message, when it is the user's and plain text
    (a string, or text parts only); None when the request cannot use the semantic cache."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content if content.strip() else None
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        text = "\n".join(p["text"] for p in content)
        return text if text.strip() else None
    return None


def scope_of(tenant: str, alias: str, body: dict[str, Any]) -> str:
    """``<tenant>.<alias>.<hash of everything that shapes the answer but the last user message's text>``:
    entries are compared only within one scope (same system prompt, earlier turns, tools, settings)."""
    shaped = {k: v for k, v in body.items() if k not in VOLATILE}
    messages = list(shaped.get("messages") or [])
    if messages:
        messages[-1] = {**messages[-1], "content": None}
    shaped["messages"] = messages
    digest = hashlib.blake2b(orjson.dumps(shaped, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
    return f"{key_token(tenant)}.{key_token(alias)}.{digest}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached answer: a ``chat.completion`` with placeholders, who served it, its usage and cost."""

    response: dict[str, Any]
    provider: str
    model_served: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str | None
    stored_at: float

    def encode(self) -> bytes:
        return orjson.dumps({"v": 1, "response": self.response, "provider": self.provider,
                             "model_served": self.model_served, "prompt_tokens": self.prompt_tokens,
                             "completion_tokens": self.completion_tokens, "cost_usd": self.cost_usd,
                             "stored_at": self.stored_at})

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        """None for anything that is not an entry of this version."""
        try:
            raw = orjson.loads(data)
            if raw.get("v") != 1 or not isinstance(raw.get("response"), dict):
                return None
            return cls(raw["response"], str(raw["provider"]), str(raw["model_served"]), int(raw["prompt_tokens"]),
                       int(raw["completion_tokens"]), raw.get("cost_usd"), float(raw["stored_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.stored_at)

    def fresh(self, ttl_s: int, now: float | None = None) -> bool:
        return self.age_s(now) < ttl_s


def streamed_answer(text_by_choice: dict[int, str], finish_by_choice: dict[int, str], model: str) -> dict[str, Any]:
    """A streamed answer as a ``chat.completion`` (what a cache entry holds)."""
    return {"object": "chat.completion", "model": model, "choices": [
        {"index": i, "message": {"role": "assistant", "content": text},
         "finish_reason": finish_by_choice.get(i, "stop")} for i, text in sorted(text_by_choice.items())]}


def stream_chunks(response: dict[str, Any], chunk_id: str, created: int) -> list[dict[str, Any]]:
    """A cached ``chat.completion`` as the ``chat.completion.chunk`` sequence a provider would stream:
    the role, the text in pieces of about ``STREAM_PIECE_CHARS`` characters (cut after a space where
    one is near), tool calls whole, then the finish."""
    builder = ChunkBuilder(chunk_id=chunk_id, model=str(response.get("model") or ""))
    builder.created = created
    state = StreamState()
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        index = int(choice.get("index", 0))
        message = choice.get("message") or {}
        chunks += builder.open(index)
        text = message.get("content")
        if isinstance(text, str):
            chunks += [chunk for piece in pieces(text) for chunk in builder.text(piece, index)]
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            chunks += builder.delta({"tool_calls": [{**call, "index": n} for n, call in enumerate(calls)]}, index)
        chunks += builder.finish(state, str(choice.get("finish_reason") or "stop"), index)
    return chunks


def pieces(text: str, size: int = STREAM_PIECE_CHARS) -> list[str]:
    """``text`` in pieces of about ``size`` characters, each ending after a space where one is near."""
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end + size // 2)
            if space >= 0:
                end = space + 1
        out.append(text[start:end])
        start = end
    return out
