"""OpenAI-compatible Chat Completions (OpenAI, Mistral, Groq, Together, DeepSeek, OpenRouter, Ollama,
vLLM, and Azure's body): the canonical shape already. One adapter class, parameterised by the provider's
``OpenAIQuirks``: requests pass through with the target model, usage asked for on streams, and the
provider's departures translated; responses and chunks pass through with finish reasons normalised."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from schemas.config import ProviderConfig
from schemas.errors import GatewayError, InvalidRequest, ProviderError
from stages.providers.base import HttpCall, SseEvent, StreamDecoder, StreamState
from stages.providers.common import (
    build_headers,
    classify,
    error_message,
    in_band_error,
    load_event_json,
    usage,
)
from stages.providers.openai_quirks import OPENAI, OpenAIQuirks
from stages.providers.sse import SseStreams

# ---------------------------------------------------------------------------------------------------
# Requests


def translate_request(quirks: OpenAIQuirks, model: str, body: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """The canonical body as ``quirks``' provider takes it (a new dict; ``body`` is not touched)."""
    payload = dict(body)
    for name, renamed in quirks.renamed.items():
        if name in payload:
            payload[renamed] = payload.pop(name)
    dropped = set(quirks.dropped)
    for prefix, fields in quirks.dropped_for_models:
        if model.startswith(prefix):
            dropped |= fields
    for name in dropped:
        payload.pop(name, None)
    if quirks.send_model:
        payload["model"] = model
    else:
        payload.pop("model", None)
    choice = payload.get("tool_choice")
    if isinstance(choice, str) and choice in quirks.tool_choice:
        payload["tool_choice"] = quirks.tool_choice[choice]
    if (quirks.roles or quirks.message_fields_dropped) and isinstance(payload.get("messages"), list):
        payload["messages"] = [_message(quirks, m) for m in payload["messages"]]
    n = payload.get("n")
    if quirks.max_choices is not None and isinstance(n, int) and n > quirks.max_choices:
        raise InvalidRequest(
            f"{quirks.name} returns at most {quirks.max_choices} choice(s) per request; n={n} was asked for.",
            param="n",
            code="unsupported_parameter",
        )
    if stream:
        payload["stream"] = True
        options = payload.pop("stream_options", None)
        if quirks.ask_stream_usage:
            payload["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    else:
        payload.pop("stream", None)
        payload.pop("stream_options", None)
    return payload


def _message(quirks: OpenAIQuirks, message: Any) -> Any:
    if not isinstance(message, Mapping):
        return message
    out = {k: v for k, v in message.items() if k not in quirks.message_fields_dropped}
    role = out.get("role")
    if isinstance(role, str) and role in quirks.roles:
        out["role"] = quirks.roles[role]
    return out


# ---------------------------------------------------------------------------------------------------
# Responses and chunks


def normalise_choices(quirks: OpenAIQuirks, choices: Any) -> Any:
    """Choices with the provider's finish reasons in OpenAI's terms (new dicts where one changed);
    a finish reason that means the generation failed raises a retryable ``ProviderError``."""
    if not isinstance(choices, list) or not (quirks.finish_reasons or quirks.failed_finish_reasons):
        return choices
    out = []
    for choice in choices:
        reason = choice.get("finish_reason") if isinstance(choice, Mapping) else None
        if reason in quirks.failed_finish_reasons:
            raise ProviderError(
                f"{quirks.name} ended the generation with finish_reason {reason!r}",
                code="provider_generation_failed",
                retryable=True,
            )
        if isinstance(reason, str) and reason in quirks.finish_reasons:
            choice = {**choice, "finish_reason": quirks.finish_reasons[reason]}
        out.append(choice)
    return out


def _at(chunk: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = chunk
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


class OpenAIStreamDecoder:
    """Passes chunks through (finish reasons normalised), noting usage and finish reasons; ``[DONE]``
    ends the stream. Usage found anywhere but a choices-less chunk gets its own chunk at ``[DONE]``."""

    def __init__(self, quirks: OpenAIQuirks = OPENAI) -> None:
        self.state = StreamState()
        self._quirks = quirks
        self._last: Mapping[str, Any] = {}
        self._usage_chunk_seen = False

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        data = event.data.strip()
        if not data:
            return []
        if data == "[DONE]":
            self.state.finished = True
            return self._synthesized_usage()
        chunk = load_event_json(data)
        error = chunk.get("error")
        if error:
            code = error.get("code") if isinstance(error, Mapping) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            raise in_band_error(error, status)
        if self._quirks.skip_annotation_chunks:
            chunk = _without_annotations(chunk)
            if not chunk["choices"] and not chunk.get("usage"):
                return []
        choices = chunk.get("choices")
        for path in self._quirks.stream_usage_at:
            reported = _at(chunk, path)
            if isinstance(reported, Mapping):
                self.state.prompt_tokens = reported.get("prompt_tokens", self.state.prompt_tokens)
                self.state.completion_tokens = reported.get("completion_tokens", self.state.completion_tokens)
                self._usage_chunk_seen = self._usage_chunk_seen or (path == ("usage",) and not choices)
                break
        normalised = normalise_choices(self._quirks, choices)
        if normalised is not choices:
            chunk = {**chunk, "choices": normalised}
        for choice in normalised if isinstance(normalised, list) else []:
            if isinstance(choice, Mapping) and choice.get("finish_reason"):
                self.state.finish_reason = str(choice["finish_reason"])
        self._last = chunk
        return [chunk]

    def _synthesized_usage(self) -> list[dict[str, Any]]:
        """Servers that put usage on a content chunk get the usage-only chunk the contract promises."""
        if self._usage_chunk_seen or (
            self.state.prompt_tokens is None and self.state.completion_tokens is None
        ):
            return []
        head = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
        return [
            {**head, "choices": [], "usage": usage(self.state.prompt_tokens, self.state.completion_tokens)}
        ]


def _without_annotations(chunk: dict[str, Any]) -> dict[str, Any]:
    """The chunk without choices that carry no ``delta`` (content-filter annotations only)."""
    choices = chunk.get("choices")
    kept = [c for c in choices if isinstance(c, Mapping) and "delta" in c] if isinstance(choices, list) else []
    return chunk if kept == choices else {**chunk, "choices": kept}


# ---------------------------------------------------------------------------------------------------
# The adapter


class OpenAICompatAdapter(SseStreams):
    """The adapter for every OpenAI-compatible provider; ``quirks`` says how this one departs from OpenAI."""

    def __init__(self, quirks: OpenAIQuirks = OPENAI) -> None:
        self.quirks = quirks

    def to_provider_request(
        self,
        provider: ProviderConfig,
        model: str,
        body: Mapping[str, Any],
        *,
        stream: bool,
        api_key: str | None,
        credentials: Mapping[str, str] | None = None,
    ) -> HttpCall:
        payload = translate_request(self.quirks, model, body, stream=stream)
        headers = build_headers(provider, self.auth_headers(api_key))
        return HttpCall("POST", self.url(provider, model), headers, payload)

    def url(self, provider: ProviderConfig, model: str) -> str:
        return provider.base_url.rstrip("/") + "/chat/completions"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]:
        response = dict(data)
        response.setdefault("model", model)
        if "choices" in response:
            response["choices"] = normalise_choices(self.quirks, response["choices"])
        return response

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder:
        return OpenAIStreamDecoder(self.quirks)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        error = classify(status, headers, error_message(body))
        code = _error_code(body)
        if status == 400 and code in _KEPT_ERROR_CODES:
            error.code = code  # the provider said what it was, whatever its message reads like
        return error


# OpenAI-wire ``error.code`` values worth telling the caller as they are (Groq's context overflow says
# only "Please reduce the length of the messages or completion."; Azure's prompt filter is a 400).
_KEPT_ERROR_CODES = frozenset({"context_length_exceeded", "content_filter"})


def _error_code(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) else None
