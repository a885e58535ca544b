"""Wire-neutral request and reply: what the three wire formats parse into and render from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from infra.doubles.mock_provider.directives import Fault, ToolCall, strip_directives

DEFAULT_CHUNK_CHARS = 8
ECHO_PREFIX = "Echo: "


class WireError(ValueError):
    """The request body is not a valid request for the addressed provider (answered with HTTP 400)."""


@dataclass(slots=True)
class Prompt:
    """The parts of a provider request the mock uses."""

    model: str
    texts: list[str]
    last_user: str
    stream: bool = False
    sse: bool = True
    n: int = 1
    include_usage: bool = False
    forced_call: ToolCall | None = None  # the request's tool choice makes the model call this tool


@dataclass(frozen=True, slots=True)
class Route:
    """Which wire a request addresses, plus what the URL says (Gemini puts model and streaming there)."""

    wire: Wire
    model: str | None = None
    stream: bool = False
    sse: bool = True


@dataclass(slots=True)
class Reply:
    """The deterministic answer and its token counts: text, or (with `tool_call` set, text empty) one tool call."""

    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    chunk_chars: int = DEFAULT_CHUNK_CHARS
    tool_call: ToolCall | None = None

    def chunks(self) -> list[str]:
        """The stream pieces: of the text, or of the tool call's arguments JSON when there is one."""
        size = self.chunk_chars
        text = self.text if self.tool_call is None else self.tool_call.arguments
        if not text:
            return [""]
        return [text[i : i + size] for i in range(0, len(text), size)]


class Wire(Protocol):
    """One provider wire format."""

    name: str

    def parse(self, body: Any, route: Route) -> Prompt: ...

    def completion(self, reply: Reply, prompt: Prompt, ident: int) -> bytes: ...

    def stream(self, reply: Reply, prompt: Prompt, ident: int, cut_after: int | None) -> list[bytes]: ...

    def error(self, status: int, message: str) -> bytes: ...


def tokens(text: str) -> int:
    """ceil(len/4): the mock's token estimate."""
    return (len(text) + 3) // 4


def strip_prompt(prompt: Prompt) -> list[str]:
    """Remove directives from every text of the prompt, returning the directive bodies found."""
    found: list[str] = []
    prompt.texts = [strip_directives(text, found) for text in prompt.texts]
    prompt.last_user = strip_directives(prompt.last_user, [])
    return found


def make_reply(prompt: Prompt, fault: Fault | None) -> Reply:
    """`"Echo: " + last user text` (or the `reply_b64` text) with counts over the (directive-free)
    prompt, unless there is a tool call to answer with: the `tool_call` directive's, else the one the
    request's tool choice forces. A tool call costs ceil(len(arguments JSON)/4) completion tokens."""
    text = ECHO_PREFIX + prompt.last_user
    chunk_chars = DEFAULT_CHUNK_CHARS
    tool_call = prompt.forced_call
    if fault is not None:
        if fault.reply is not None:
            text = fault.reply
        if fault.chunk_chars is not None:
            chunk_chars = fault.chunk_chars
        if fault.tool_call is not None:
            tool_call = fault.tool_call
    prompt_tokens = 0
    for part in prompt.texts:
        prompt_tokens += (len(part) + 3) // 4
    if tool_call is not None:
        text = ""
    return Reply(
        model=prompt.model,
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=max(1, tokens(text if tool_call is None else tool_call.arguments)),
        chunk_chars=chunk_chars,
        tool_call=tool_call,
    )


def text_of(content: Any) -> str:
    """A message's text: a string, or the `text` of its `type: "text"` parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""
