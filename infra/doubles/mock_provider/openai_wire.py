"""OpenAI Chat Completions wire format: `chat.completion`, `chat.completion.chunk` SSE and error bodies."""

from __future__ import annotations

import time
from typing import Any

import orjson

from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, WireError, text_of
from infra.doubles.mock_provider.directives import ToolCall
from infra.doubles.mock_provider.tool_choice import Function, UnknownFunction, forced_call, function_tools

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


def _choice_name(choice: Any) -> tuple[bool, str | None]:
    """(forced?, the named function) of a `tool_choice`; raises `WireError` for an unknown shape."""
    if choice in ("auto", "none"):
        return False, None
    if choice in ("required", "any"):  # "any": Mistral's spelling of "required"
        return True, None
    if isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") == "function" and isinstance(function, dict) and isinstance(function.get("name"), str):
            return True, function["name"]
        allowed = choice.get("allowed_tools")
        if choice.get("type") == "allowed_tools" and isinstance(allowed, dict):
            return allowed.get("mode") == "required", None
    raise WireError(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object naming a function."
    )


def _allowed(choice: Any, functions: list[Function]) -> list[Function]:
    """The declared functions an `allowed_tools` choice permits (all of them for other choices)."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return functions
    listed = choice["allowed_tools"].get("tools")
    names: list[str] = []
    for tool in listed if isinstance(listed, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    declared = {f.name for f in functions}
    for name in names:
        if name not in declared:
            raise WireError(f"Invalid value for 'tool_choice': no function named '{name}' is in 'tools'.")
    if not names:
        raise WireError("Invalid value for 'tool_choice': 'allowed_tools.tools' must name at least one function.")
    return [f for f in functions if f.name in names]


def _forced_call(body: dict[str, Any]) -> ToolCall | None:
    """The tool call `tool_choice` forces ("required", a named function, `allowed_tools` with mode
    "required"), else None ("auto", "none", absent)."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    forced, name = _choice_name(choice)
    if not forced:
        return None
    functions = function_tools(body.get("tools"))
    if not functions:
        raise WireError("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
    try:
        return forced_call(_allowed(choice, functions), name)
    except UnknownFunction:
        raise WireError(
            f"Invalid value for 'tool_choice': no function named '{name}' was specified in the 'tools' parameter."
        ) from None


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
            model=model,
            texts=texts,
            last_user=last_user,
            stream=stream,
            n=n,
            include_usage=include_usage,
            forced_call=_forced_call(body),
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
