"""OpenAI Chat Completions wire format: `chat.completion`, `chat.completion.chunk` SSE and error bodies."""

from __future__ import annotations

import time
from typing import Any

import orjson

from infra.mock_provider.conversation import Prompt, Reply, Route, WireError, text_of

DONE = b"data: [DONE]\n\n"
_ROLE_DELTA = b'{"role":"assistant","content":"","refusal":null}'
_TOOL_ROLE_DELTA = b'{"role":"assistant","content":null,"refusal":null}'
FINGERPRINT = "fp_mock"

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}` as OpenAI sends it."""
    kind, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return orjson.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code or default_code}}
    )


def _usage(reply: Reply, n: int) -> dict[str, Any]:
    completion = reply.completion_tokens * n
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _call_id(ident: int) -> str:
    return f"call_mock{ident:016x}"


class OpenAIWire:
    name = "openai"

    def parse(self, body: Any, route: Route) -> Prompt:
        if not isinstance(body, dict):
            raise WireError("The request body must be a JSON object.")
        model = body.get("model") or route.model  # Azure names the deployment in the path instead
        if not isinstance(model, str) or not model:
            raise WireError("Missing required parameter: 'model'.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("Missing required parameter: 'messages'.")
        texts: list[str] = []
        last_user = ""
        for message in messages:
            if not isinstance(message, dict):
                raise WireError("Invalid type for 'messages': each message must be an object.")
            text = text_of(message.get("content"))
            texts.append(text)
            if message.get("role") == "user":
                last_user = text
        n = body.get("n")
        if n is None:
            n = 1
        elif isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
            raise WireError("Invalid 'n': must be an integer between 1 and 128.")
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
        return Prompt(
            model=model, texts=texts, last_user=last_user, stream=stream, n=n, include_usage=include_usage
        )

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        finish = "stop"
        call = reply.tool_call
        if call is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": _call_id(ident),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ]
            finish = "tool_calls"
        return orjson.dumps(
            {
                "id": f"chatcmpl-mock{ident:016x}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.model,
                "choices": [
                    {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                    for i in range(prompt.n)
                ],
                "usage": _usage(reply, prompt.n),
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
            }
        )

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]:
        # Chunks share every field but the choice, so they are spliced from byte templates (hot path).
        fixed = {
            "id": f"chatcmpl-mock{ident:016x}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "system_fingerprint": FINGERPRINT,
        }
        head = b"data: " + orjson.dumps(fixed)[:-1] + b',"choices":'
        tail = b',"usage":null}\n\n' if prompt.include_usage else b"}\n\n"
        n = prompt.n
        indexes = [str(i).encode() for i in range(n)]

        def chunk(index: bytes, delta: bytes, finish: bytes) -> bytes:
            return b"".join(
                (
                    head,
                    b'[{"index":',
                    index,
                    b',"delta":',
                    delta,
                    b',"logprobs":null,"finish_reason":',
                    finish,
                    b"}]",
                    tail,
                )
            )

        call = reply.tool_call
        if call is None:
            events = [chunk(i, _ROLE_DELTA, b"null") for i in indexes]
            deltas = [b'{"content":' + orjson.dumps(piece) + b"}" for piece in reply.chunks()]
            finish = b'"stop"'
        else:
            function = {"name": call.name, "arguments": ""}
            opening = orjson.dumps(
                {"tool_calls": [{"index": 0, "id": _call_id(ident), "type": "function", "function": function}]}
            )
            events = [chunk(i, _TOOL_ROLE_DELTA, b"null") for i in indexes]
            events.extend(chunk(i, opening, b"null") for i in indexes)
            deltas = [
                orjson.dumps({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in reply.chunks()
            ]
            finish = b'"tool_calls"'
        sent = 0
        for delta in deltas:
            for i in indexes:
                if cut_after is not None and sent >= cut_after:
                    return events
                events.append(chunk(i, delta, b"null"))
                sent += 1
        if cut_after is not None:
            return events
        events.extend(chunk(i, b"{}", finish) for i in indexes)
        if prompt.include_usage:
            events.append(head + b'[],"usage":' + orjson.dumps(_usage(reply, n)) + b"}\n\n")
        events.append(DONE)
        return events

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)


WIRE = OpenAIWire()
