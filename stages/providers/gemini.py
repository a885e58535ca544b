"""Google Gemini API (``v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``):
request, response and error translation. Stream decoding lives in ``gemini_stream``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from schemas.config import ProviderConfig
from schemas.errors import GatewayError
from stages.providers.base import HttpCall, StreamDecoder
from stages.providers.common import (
    build_headers,
    classify,
    completion_id,
    content_parts,
    error_message,
    forced_function,
    function_tools,
    guess_media_type,
    max_output_tokens,
    now,
    parse_arguments,
    parse_data_url,
    stop_sequences,
    text_of,
    tool_call,
    usage,
)
from stages.providers.gemini_schema import gemini_schema
from stages.providers.gemini_stream import (
    GeminiStreamDecoder,
    call_id,
    finish_reason,
    read_candidate,
    usage_counts,
)
from stages.providers.sse import SseStreams

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def _part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """One OpenAI content part as a Gemini part; ``None`` for parts it cannot take."""
    kind = part.get("type")
    if kind == "text":
        return {"text": part["text"]} if part.get("text") else None
    url: Any = None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
    elif kind == "file":
        file = part.get("file")
        url = file.get("file_data") if isinstance(file, Mapping) else None
    elif kind == "input_audio":
        audio = part.get("input_audio")
        if isinstance(audio, Mapping) and isinstance(audio.get("data"), str):
            mime = _AUDIO_TYPES.get(str(audio.get("format")), f"audio/{audio.get('format')}")
            return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
    if not isinstance(url, str):
        return None
    data = parse_data_url(url)
    if data is not None:
        return {"inlineData": {"mimeType": data.media_type, "data": data.data}}
    return {"fileData": {"mimeType": guess_media_type(url), "fileUri": url}}


def _parts(content: Any) -> list[dict[str, Any]]:
    return [p for p in (_part(c) for c in content_parts(content)) if p is not None]


def _function_response(message: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A tool message as a ``functionResponse`` part: its JSON object, else ``{"output": text}``."""
    text = text_of(message.get("content"))
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    call = str(message.get("tool_call_id"))
    name = names.get(call) or message.get("name") or call
    return {
        "functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"output": text}}
    }


def translate_messages(
    messages: list[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (Gemini ``contents``, ``systemInstruction`` parts). Assistant turns get the
    ``model`` role, tool results go back as ``functionResponse`` parts of a user turn (named after the
    assistant's call with that id), and consecutive turns of one role merge."""
    names = {
        str(call.get("id")): str((call.get("function") or {}).get("name"))
        for m in messages
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or []
        if isinstance(call, Mapping)
    }
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(p for p in _parts(message.get("content")) if "text" in p)
            continue
        if role == "user":
            turn_role, parts = "user", _parts(message.get("content"))
        elif role == "assistant":
            turn_role, parts = "model", _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                args = parse_arguments(function.get("arguments"))
                parts.append({"functionCall": {"name": function.get("name"), "args": args}})
        elif role == "tool":
            turn_role, parts = "user", [_function_response(message, names)]
        else:
            continue  # the legacy "function" role is dropped
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    return contents, system


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if stop_sequences(body):
        config["stopSequences"] = stop_sequences(body)
    for source, target in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
    ):
        if isinstance(body.get(source), int | float) and not isinstance(body.get(source), bool):
            config[target] = body[source]
    if max_output_tokens(body) is not None:
        config["maxOutputTokens"] = max_output_tokens(body)
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        spec = response_format.get("json_schema")
        if isinstance(spec, Mapping) and isinstance(spec.get("schema"), Mapping):
            config["responseSchema"] = gemini_schema(spec["schema"])
    return config


def _declaration(function: Mapping[str, Any]) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    if isinstance(parameters, Mapping) and parameters.get("properties"):  # Gemini rejects empty objects
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


def _tool_config(tool_choice: Any) -> dict[str, Any] | None:
    name = forced_function(tool_choice)
    if name:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(str(tool_choice))
    return {"functionCallingConfig": {"mode": mode}} if mode else None


def build_body(body: Mapping[str, Any]) -> dict[str, Any]:
    contents, system = translate_messages(list(body.get("messages") or []))
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": system}
    config = _generation_config(body)
    if config:
        payload["generationConfig"] = config
    tools = function_tools(body)
    if tools:
        payload["tools"] = [{"functionDeclarations": [_declaration(f) for f in tools]}]
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config:
            payload["toolConfig"] = tool_config
    return payload


def _retry_delay(body: bytes) -> str | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``) of a 429 body."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    data = data[0] if isinstance(data, list) and data else data
    error = data.get("error") if isinstance(data, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            return delay.removesuffix("s") or None
    return None


class GeminiAdapter(SseStreams):
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
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{provider.base_url.rstrip('/')}/v1beta/models/{model.removeprefix('models/')}:{method}"
        headers = build_headers(provider, {"x-goog-api-key": api_key} if api_key else {})
        return HttpCall("POST", url, headers, build_body(body))

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        n_calls = 0
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, Mapping)]
        for position, candidate in enumerate(candidates):
            text, calls = read_candidate(candidate)
            tool_calls = []
            for call in calls:
                tool_calls.append(
                    tool_call(call.id or call_id(request_id, n_calls), call.name, call.arguments)
                )
                n_calls += 1
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if text or not tool_calls else None,
            }
            if tool_calls:
                message["tool_calls"] = tool_calls
            reason = finish_reason(candidate.get("finishReason"), called_tools=bool(tool_calls))
            index = candidate.get("index", position)
            choices.append({"index": index, "message": message, "finish_reason": reason})
        feedback = data.get("promptFeedback")
        if not choices and isinstance(feedback, Mapping) and feedback.get("blockReason"):
            blocked = {"role": "assistant", "content": None}
            choices.append({"index": 0, "message": blocked, "finish_reason": "content_filter"})
        response: dict[str, Any] = {
            "id": completion_id(data.get("responseId"), request_id),
            "object": "chat.completion",
            "created": now(),
            "model": data.get("modelVersion") or model,
            "choices": sorted(choices, key=lambda c: int(c["index"])),
        }
        counts = usage_counts(data.get("usageMetadata"))
        if counts is not None:
            response["usage"] = usage(*counts)
        return response

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder:
        return GeminiStreamDecoder(model=model, request_id=request_id)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        delay = _retry_delay(body) if status == 429 else None
        if delay and not any(k.lower() in ("retry-after", "retry-after-ms") for k in headers):
            headers = {**headers, "retry-after": delay}
        return classify(status, headers, error_message(body))
