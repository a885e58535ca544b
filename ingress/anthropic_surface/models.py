"""Pydantic view of an Anthropic ``POST /v1/messages`` body: strict where translation depends on it,
unknown fields allowed (and ignored by the translation).

Content blocks are a tagged union on ``type``. The tags are prefixed (``block:text``) so that the
error location pydantic reports can be cleaned into a plain path such as ``messages.0.content.1.text``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

TAG_PREFIX = "block:"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Model):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class Base64ImageSource(_Model):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class UrlSource(_Model):
    type: Literal["url"]
    url: str = Field(min_length=1)


class ImageBlock(_Model):
    type: Literal["image"]
    source: Annotated[Base64ImageSource | UrlSource, Field(discriminator="type")]
    cache_control: dict[str, Any] | None = None


class Base64PdfSource(_Model):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: str = Field(min_length=1)


class PlainTextSource(_Model):
    type: Literal["text"]
    media_type: Literal["text/plain"] = "text/plain"
    data: str


class DocumentBlock(_Model):
    """Base64 PDFs and plain-text documents; URL and content-block sources are refused."""

    type: Literal["document"]
    source: Annotated[Base64PdfSource | PlainTextSource, Field(discriminator="type")]
    title: str | None = None
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


def _tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{TAG_PREFIX}{kind}" if isinstance(kind, str) else None


def _union_error(kinds: str) -> Discriminator:
    return Discriminator(
        _tag,
        custom_error_type="invalid_block",
        custom_error_message=f"expected a content block object with 'type' one of: {kinds}",
    )


ToolResultContentBlock = Annotated[
    Annotated[TextBlock, Tag("block:text")] | Annotated[ImageBlock, Tag("block:image")],
    _union_error("text, image"),
]


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ToolResultContentBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(_Model):
    """Replayed extended-thinking history: accepted, dropped by the translation."""

    type: Literal["thinking", "redacted_thinking"]


BLOCK_TYPES = "text, image, document, tool_use, tool_result, thinking, redacted_thinking"

ContentBlock = Annotated[
    Annotated[TextBlock, Tag("block:text")]
    | Annotated[ImageBlock, Tag("block:image")]
    | Annotated[DocumentBlock, Tag("block:document")]
    | Annotated[ToolUseBlock, Tag("block:tool_use")]
    | Annotated[ToolResultBlock, Tag("block:tool_result")]
    | Annotated[ThinkingBlock, Tag("block:thinking")]
    | Annotated[ThinkingBlock, Tag("block:redacted_thinking")],
    _union_error(BLOCK_TYPES),
]


class Message(_Model):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class SystemBlock(_Model):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class Tool(_Model):
    """A client tool. Anthropic server tools (``web_search_…``, ``bash_…``) have no OpenAI equivalent."""

    type: str | None = None
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _client_tool(self) -> Tool:
        if self.type not in (None, "custom"):
            raise ValueError(f"tool type '{self.type}' is not supported (only custom tools with an 'input_schema')")
        if self.input_schema is None:
            raise ValueError("'input_schema' is required")
        return self


class ToolChoice(_Model):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, min_length=1)
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("'name' is required when type is 'tool'")
        return self


class Metadata(_Model):
    user_id: str | None = None


class CountTokensRequest(_Model):
    """The body of ``POST /v1/messages/count_tokens``: a messages request without ``max_tokens``."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[SystemBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = Field(default=None, max_length=4)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    stream: bool = False
