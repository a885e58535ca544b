"""Google Gemini generateContent wire format: responses, `alt=sse` / JSON-array streams and error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, WireError, tokens
from infra.doubles.mock_provider.directives import ToolCall
from infra.doubles.mock_provider.tool_choice import Function, forced_call

_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Google's SSE frames end with CRLF pairs (the SSE spec allows \r\n, \n or \r line ends).
_SSE_END = b"\r\n\r\n"


def error_body(status: int, message: str) -> bytes:
    """`{"error": {"code", "message", "status"}}` as Google sends it."""
    name = _STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {"code": status, "message": message, "status": name}})


def _parts_text(content: Any) -> str:
    if not isinstance(content, dict):
        raise WireError("Invalid JSON payload: each content must be an object.")
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise WireError("Invalid JSON payload: content.parts must be a list.")
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _usage(prompt_tokens: int, candidate_tokens: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidate_tokens,
        "totalTokenCount": prompt_tokens + candidate_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }


def _parts(reply: Reply) -> list[dict[str, Any]]:
    """The answer's parts: its text, or its one `functionCall` (sent whole, also when streaming)."""
    call = reply.tool_call
    if call is None:
        return [{"text": reply.text}]
    return [{"functionCall": {"name": call.name, "args": call.args()}}]


_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})


def _field(obj: Any, camel: str, snake: str) -> Any:
    """A request field under its camelCase or snake_case name (Google accepts both)."""
    if not isinstance(obj, dict):
        return None
    return obj.get(camel, obj.get(snake))


def _declarations(tools: Any) -> list[Function]:
    functions: list[Function] = []
    for tool in tools if isinstance(tools, list) else []:
        declarations = _field(tool, "functionDeclarations", "function_declarations")
        for d in declarations if isinstance(declarations, list) else []:
            if isinstance(d, dict) and isinstance(d.get("name"), str):
                schema = _field(d, "parametersJsonSchema", "parameters_json_schema") or d.get("parameters")
                functions.append(Function(d["name"], schema))
    return functions


def _forced_call(body: dict[str, Any]) -> ToolCall | None:
    """The `functionCall` that `toolConfig.functionCallingConfig.mode: "ANY"` forces: the first
    declared function (of `allowedFunctionNames` when given); else None (`AUTO`, `NONE`, `VALIDATED`)."""
    config = _field(_field(body, "toolConfig", "tool_config"), "functionCallingConfig", "function_calling_config")
    if config is None:
        return None
    mode = _field(config, "mode", "mode") or "MODE_UNSPECIFIED"
    if not isinstance(mode, str) or mode.upper() not in _MODES:
        raise WireError(f"Invalid value at 'tool_config.function_calling_config.mode', {orjson.dumps(mode).decode()}")
    if mode.upper() != "ANY":
        return None
    functions = _declarations(body.get("tools"))
    if not functions:
        raise WireError("Function calling config is set without function_declarations.")
    allowed = _field(config, "allowedFunctionNames", "allowed_function_names")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
            raise WireError("Invalid value at 'tool_config.function_calling_config.allowed_function_names'")
        declared = {f.name for f in functions}
        for index, name in enumerate(allowed):
            if name not in declared:
                raise WireError(
                    f"* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names[{index}]: "
                    f"function '{name}' is not declared in tools.function_declarations"
                )
        if allowed:
            functions = [f for f in functions if f.name in allowed]
    return forced_call(functions)


class GeminiWire:
    name = "gemini"

    def parse(self, body: Any, route: Route) -> Prompt:
        if not isinstance(body, dict):
            raise WireError("Invalid JSON payload: the request body must be an object.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise WireError("* GenerateContentRequest.contents: contents is not specified")
        system = body.get("systemInstruction", body.get("system_instruction"))
        texts = [_parts_text(system)] if system is not None else []
        last_user = ""
        for content in contents:
            text = _parts_text(content)
            texts.append(text)
            if content.get("role", "user") == "user":
                last_user = text
        return Prompt(
            model=route.model or "",
            texts=texts,
            last_user=last_user,
            stream=route.stream,
            sse=route.sse,
            forced_call=_forced_call(body),
        )

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes:
        return orjson.dumps(
            {
                "candidates": [
                    {
                        "content": {"parts": _parts(reply), "role": "model"},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": _usage(reply.prompt_tokens, reply.completion_tokens),
                "modelVersion": reply.model,
                "responseId": f"mock{ident:016x}",
            }
        )

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]:
        steps: list[tuple[list[dict[str, Any]], int]] = []  # (parts, candidate tokens so far)
        if reply.tool_call is None:
            done = 0
            for piece in reply.chunks():
                done += len(piece)
                steps.append(([{"text": piece}], tokens(reply.text[:done])))
        else:
            # Gemini sends a function call whole: one chunk with it, then an empty-text chunk that finishes.
            steps = [(_parts(reply), reply.completion_tokens), ([{"text": ""}], reply.completion_tokens)]
        if cut_after is not None:
            steps = steps[:cut_after]
        response_id = f"mock{ident:016x}"
        last = len(steps) - 1
        frames: list[bytes] = []
        for i, (parts, done_tokens) in enumerate(steps):
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            final = cut_after is None and i == last
            if final:
                candidate["finishReason"] = "STOP"
            chunk = {
                "candidates": [candidate],
                "usageMetadata": _usage(reply.prompt_tokens, reply.completion_tokens if final else done_tokens),
                "modelVersion": reply.model,
                "responseId": response_id,
            }
            frames.append(orjson.dumps(chunk))
        if prompt.sse:
            return [b"data: " + frame + _SSE_END for frame in frames]
        # Without alt=sse Google streams one JSON array, element by element.
        out = [b"[" + frames[0]] if frames else [b"["]
        out.extend(b",\r\n" + frame for frame in frames[1:])
        if cut_after is None:
            out.append(b"]")
        return out

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)


WIRE = GeminiWire()
