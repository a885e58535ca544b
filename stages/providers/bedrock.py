"""Amazon Bedrock Converse API (``POST /model/{modelId}/converse`` and ``/converse-stream``), SigV4-signed.

Requests are signed with AWS Signature Version 4 (service ``bedrock``, the provider's region) by
botocore's ``SigV4Auth``: ``x-amz-date``, ``x-amz-security-token`` (temporary credentials) and
``authorization`` cover the method, URL, the signed headers and the exact body bytes, so the call
carries its serialized body in ``HttpCall.content``. Signing is pure given the credentials and the
time (``now``, injectable). Without AWS keys, an ``api_key`` is sent as a Bedrock API key
(``authorization: Bearer``); with neither, the request goes unsigned (a signing proxy, a local mock).

Stream framing and decoding live in ``bedrock_stream``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from schemas.config import ProviderConfig
from schemas.errors import AuthenticationFailed, GatewayError
from stages.providers.base import HttpCall, StreamDecoder, StreamParser
from stages.providers.bedrock_stream import (
    ERROR_STATUS,
    BedrockEventStreamParser,
    BedrockStreamDecoder,
    classify_bedrock,
    finish_reason,
    prompt_tokens,
)
from stages.providers.common import (
    completion_id,
    content_parts,
    dump_arguments,
    error_message,
    forced_function,
    function_tools,
    max_output_tokens,
    now,
    number,
    parse_arguments,
    parse_data_url,
    stop_sequences,
    text_of,
    tool_call,
    usage,
)

SERVICE = "bedrock"
_SIGNED_NAMES = {"authorization", "x-amz-date", "x-amz-security-token", "content-type", "host"}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}


@runtime_checkable
class BedrockSettings(Protocol):
    """What the adapter reads from a ``bedrock`` provider config (``schemas.config.BedrockProvider``)."""

    region: str
    base_url: str
    headers: dict[str, str]


def endpoint(provider: BedrockSettings) -> str:
    return provider.base_url.rstrip("/") or f"https://bedrock-runtime.{provider.region}.amazonaws.com"


# ---------------------------------------------------------------------------------------------------
# SigV4


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    service: str,
    when: datetime,
) -> dict[str, str]:
    """``headers`` plus ``x-amz-date``, ``x-amz-security-token`` (if a session token) and ``authorization``.

    Every header given is signed (with ``host``, from ``url``), so all must be sent exactly as given."""
    timestamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    signed = dict(headers)
    signed["x-amz-date"] = timestamp
    if session_token:
        signed["x-amz-security-token"] = session_token
    request = AWSRequest(method=method, url=url, headers=signed, data=body)
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(access_key_id, secret_access_key, session_token), service, region)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signed_names = signer.signed_headers(signer.headers_to_sign(request))
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={signed_names}, Signature={signature}"
    )
    return signed


# ---------------------------------------------------------------------------------------------------
# Request


def _block(part: Mapping[str, Any], documents: list[int]) -> dict[str, Any] | None:
    """One OpenAI content part as a Converse content block; ``None`` for parts it cannot take."""
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return {"text": text} if isinstance(text, str) and text.strip() else None  # Bedrock rejects blank text
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        data = parse_data_url(url) if isinstance(url, str) else None
        if data and data.media_type in _IMAGE_FORMATS:  # remote URLs: Converse takes bytes or S3 only
            return {"image": {"format": _IMAGE_FORMATS[data.media_type], "source": {"bytes": data.data}}}
    if kind == "file":
        file = part.get("file")
        data = parse_data_url(str(file.get("file_data", ""))) if isinstance(file, Mapping) else None
        if data and data.media_type == "application/pdf":
            documents.append(len(documents) + 1)  # names must be unique within the request
            source = {"bytes": data.data}
            return {"document": {"format": "pdf", "name": f"document-{documents[-1]}", "source": source}}
    return None


def _turn(message: Mapping[str, Any], documents: list[int]) -> tuple[str, list[dict[str, Any]]] | None:
    role = message.get("role")
    blocks = [b for b in (_block(p, documents) for p in content_parts(message.get("content"))) if b]
    if role == "user":
        return "user", blocks
    if role == "assistant":
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            blocks.append(
                {
                    "toolUse": {
                        "toolUseId": call.get("id"),
                        "name": function.get("name"),
                        "input": parse_arguments(function.get("arguments")),
                    }
                }
            )
        return "assistant", blocks
    if role == "tool":
        text = text_of(message.get("content"))
        result = {"toolUseId": message.get("tool_call_id"), "content": [{"text": text}] if text else []}
        return "user", [{"toolResult": result}]
    return None  # the legacy "function" role is dropped


def translate_messages(
    messages: list[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (Converse ``messages``, ``system`` blocks). Consecutive turns of one role (tool
    results and the user text after them) merge into one turn: Converse wants roles to alternate."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    documents: list[int] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            text = text_of(message.get("content"))
            if text.strip():
                system.append({"text": text})
            continue
        turn = _turn(message, documents)
        if turn is None or not turn[1]:
            continue
        role, blocks = turn
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns, system


def _uses_tools(messages: list[dict[str, Any]]) -> bool:
    return any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])


def _tool_config(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = function_tools(body)
    choice = body.get("tool_choice")
    # Converse has no "none": offer no tools, unless the history has tool blocks (then toolConfig is required).
    if not tools or (choice == "none" and not _uses_tools(messages)):
        return None
    config: dict[str, Any] = {
        "tools": [
            {
                "toolSpec": {
                    "name": f.get("name"),
                    **({"description": f["description"]} if f.get("description") else {}),
                    "inputSchema": {"json": f.get("parameters") or {"type": "object", "properties": {}}},
                }
            }
            for f in tools
        ]
    }
    name = forced_function(choice)
    if name:
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def build_body(body: Mapping[str, Any]) -> dict[str, Any]:
    messages, system = translate_messages(list(body.get("messages") or []))
    payload: dict[str, Any] = {"messages": messages}
    if system:
        payload["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = max_output_tokens(body)
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    for source, target in (("temperature", "temperature"), ("top_p", "topP")):
        value = body.get(source)
        if isinstance(value, int | float) and not isinstance(value, bool):
            inference[target] = value
    stops = stop_sequences(body)
    if stops:
        inference["stopSequences"] = stops
    if inference:
        payload["inferenceConfig"] = inference
    tools = _tool_config(body, messages)
    if tools:
        payload["toolConfig"] = tools
    return payload


# ---------------------------------------------------------------------------------------------------
# The adapter


class BedrockAdapter:
    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))

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
        if not isinstance(provider, BedrockSettings):
            raise TypeError(f"the Bedrock adapter needs a bedrock provider, got {provider.type!r}")
        operation = "converse-stream" if stream else "converse"
        url = f"{endpoint(provider)}/model/{urllib.parse.quote(model, safe='')}/{operation}"
        payload = build_body(body)
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        # Configured headers are sent and signed; they cannot replace the ones signing sets.
        headers = {k: v for k, v in provider.headers.items() if k.lower() not in _SIGNED_NAMES}
        headers["content-type"] = "application/json"
        creds = credentials or {}
        access_key, secret_key = creds.get("access_key_id"), creds.get("secret_access_key")
        if access_key and secret_key:
            headers = sigv4_headers(
                "POST", url, headers, content,
                access_key_id=access_key, secret_access_key=secret_key,
                session_token=creds.get("session_token") or None,
                region=provider.region, service=SERVICE, when=self._now(),
            )
        elif access_key or secret_key:
            raise AuthenticationFailed(
                "bedrock credentials need both access_key_id and secret_access_key",
                status_code=502, code="provider_auth_failed",
            )
        elif api_key:
            headers["authorization"] = f"Bearer {api_key}"  # a Bedrock API key
        return HttpCall("POST", url, headers, payload, content)

    def from_provider_response(
        self, data: Mapping[str, Any], *, model: str, request_id: str
    ) -> dict[str, Any]:
        output = data.get("output")
        reply = output.get("message") if isinstance(output, Mapping) else None
        blocks = [b for b in (reply.get("content") if isinstance(reply, Mapping) else None) or []
                  if isinstance(b, Mapping)]
        text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))  # reasoning dropped
        calls = [
            tool_call(str(use.get("toolUseId")), str(use.get("name")), dump_arguments(use.get("input")))
            for use in (b.get("toolUse") for b in blocks)
            if isinstance(use, Mapping)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        response: dict[str, Any] = {
            "id": completion_id(None, request_id),  # Converse returns no id
            "object": "chat.completion",
            "created": now(),
            "model": model,  # nor the model
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason(data.get("stopReason")) or "stop"}
            ],
        }
        reported = data.get("usage")
        if isinstance(reported, Mapping):
            response["usage"] = usage(prompt_tokens(reported), number(reported.get("outputTokens")))
        return response

    def stream_parser(self) -> StreamParser:
        return BedrockEventStreamParser()

    def stream_decoder(self, *, model: str, request_id: str) -> StreamDecoder:
        return BedrockStreamDecoder(model=model, request_id=request_id)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        """Bedrock errors: ``{"message"}`` (or ``{"Message"}``), the type in ``x-amzn-ErrorType``
        (``ThrottlingException:http://...``) or the body's ``__type``."""
        lowered = {k.lower(): v for k, v in headers.items()}
        error_type = lowered.get("x-amzn-errortype", "").split(":", 1)[0]
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = None
        message = error_message(body)
        if isinstance(data, Mapping):
            error_type = error_type or str(data.get("__type") or "").rsplit("#", 1)[-1]
            if isinstance(data.get("Message"), str) and "message" not in data:
                message = data["Message"]
        if error_type.lower() == "modelerrorexception":
            status = ERROR_STATUS["modelerrorexception"]  # 424: the model failed; worth another try
        return classify_bedrock(status, headers, error_type, message)
