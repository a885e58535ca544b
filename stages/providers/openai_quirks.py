"""How each OpenAI-compatible API departs from OpenAI's, as data: the registry builds `OpenAICompatAdapter(MISTRAL)`.

Rule for every entry: a field the provider documents as accepted, or silently ignores, passes through
unchanged; a field it rejects is translated (when it has an equivalent) or dropped; a field it ignores
but that changes the answer (an output-token limit under another name) is translated. Each entry cites
what it rests on in the provider's API reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Request fields only OpenAI defines; a provider that rejects unknown fields must not get them.
OPENAI_ONLY_FIELDS = frozenset({
    "audio", "function_call", "functions", "logit_bias", "logprobs", "metadata", "modalities",
    "prompt_cache_key", "reasoning_effort", "safety_identifier", "service_tier", "store", "top_logprobs",
    "user", "verbosity", "web_search_options",
})


@dataclass(frozen=True)
class OpenAIQuirks:
    """One provider's departures from the OpenAI Chat Completions API; the defaults are OpenAI itself."""

    name: str = "OpenAI"
    send_model: bool = True
    """``False``: the model is in the URL (Azure deployments), so the body carries none."""
    ask_stream_usage: bool = True
    """``True``: streams send ``stream_options.include_usage``. ``False``: ``stream_options`` is never sent
    (the provider rejects it) and usage is read from wherever the provider puts it."""
    renamed: Mapping[str, str] = field(default_factory=dict)
    """Request field → the provider's name for it (the value moves; a field already there is replaced)."""
    dropped: frozenset[str] = frozenset()
    dropped_for_models: tuple[tuple[str, frozenset[str]], ...] = ()
    """(model-name prefix, fields): fields only some of the provider's models reject."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Message role → the role the provider takes instead."""
    message_fields_dropped: frozenset[str] = frozenset()
    tool_choice: Mapping[str, str] = field(default_factory=dict)
    """String ``tool_choice`` values → the provider's spelling."""
    max_choices: int | None = None
    """``n`` above this is refused before sending (the provider would reject it)."""
    stream_usage_at: tuple[tuple[str, ...], ...] = (("usage",),)
    """Where usage may sit in a stream chunk, as key paths from the chunk."""
    finish_reasons: Mapping[str, str] = field(default_factory=dict)
    """Provider-only ``finish_reason`` values → OpenAI's."""
    failed_finish_reasons: frozenset[str] = frozenset()
    """``finish_reason`` values that mean the generation failed: raised as a retryable provider error."""
    skip_annotation_chunks: bool = False
    """Drop stream chunks (and choices) that carry no delta, only annotations (Azure content filter)."""


_MAX_TOKENS = {"max_completion_tokens": "max_tokens"}
_DEVELOPER_AS_SYSTEM = {"developer": "system"}

OPENAI = OpenAIQuirks()

# docs.mistral.ai/api (chat completions): the request schema forbids extra inputs (422
# "Extra inputs are not permitted"); it names the seed `random_seed`, the limit `max_tokens`, has no
# `stream_options` (the last chunk carries usage anyway), no `user`/`logit_bias`/`logprobs`; message
# roles are system/user/assistant/tool; `tool_choice` is auto/none/any (what OpenAI calls required);
# `finish_reason` adds `model_length` (context filled) and `error`. `n`, `parallel_tool_calls`,
# `prediction`, `safe_prompt`, `prompt_mode` are accepted.
MISTRAL = OpenAIQuirks(
    name="Mistral",
    ask_stream_usage=False,
    renamed={**_MAX_TOKENS, "seed": "random_seed"},
    dropped=OPENAI_ONLY_FIELDS,
    roles=_DEVELOPER_AS_SYSTEM,
    tool_choice={"required": "any"},
    finish_reasons={"model_length": "length"},
    failed_finish_reasons=frozenset({"error"}),
)

# console.groq.com/docs/openai: "logprobs, logit_bias, top_logprobs, messages[].name" are not supported
# and return 400; "n" must be 1. `max_completion_tokens`, `seed`, `user`, `tool_choice: required`,
# `parallel_tool_calls` are accepted. Streams end with usage under `x_groq.usage` on the last chunk,
# whether asked or not, so `stream_options` is not sent.
GROQ = OpenAIQuirks(
    name="Groq",
    ask_stream_usage=False,
    dropped=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
    message_fields_dropped=frozenset({"name"}),
    max_choices=1,
    stream_usage_at=(("usage",), ("x_groq", "usage")),
)

# docs.together.ai/reference/chat-completions: the limit is `max_tokens`; streams carry `usage` on the
# last chunk without being asked; `finish_reason` may be `eos` (end of sequence).
TOGETHER = OpenAIQuirks(
    name="Together",
    ask_stream_usage=False,
    renamed=_MAX_TOKENS,
    finish_reasons={"eos": "stop"},
)

# api-docs.deepseek.com/api/create-chat-completion: the limit is `max_tokens`; roles are
# system/user/assistant/tool; `stream_options.include_usage` is supported. deepseek-reasoner rejects
# `logprobs`/`top_logprobs` (the rest of its unsupported sampling fields are ignored) and returns 400
# when an input message carries `reasoning_content`. `finish_reason` adds
# `insufficient_system_resource` (generation cut short by the server).
DEEPSEEK = OpenAIQuirks(
    name="DeepSeek",
    renamed=_MAX_TOKENS,
    roles=_DEVELOPER_AS_SYSTEM,
    dropped_for_models=(("deepseek-reasoner", frozenset({"logprobs", "top_logprobs"})),),
    message_fields_dropped=frozenset({"reasoning_content"}),
    failed_finish_reasons=frozenset({"insufficient_system_resource"}),
)

# openrouter.ai/docs: the OpenAI schema, forwarded to the routed provider (unsupported parameters are
# ignored); `HTTP-Referer`/`X-Title` are plain configured headers. Streams report usage in the last
# chunk; a mid-stream failure is a chunk with `error` and `finish_reason: "error"`.
OPENROUTER = OpenAIQuirks(name="OpenRouter", failed_finish_reasons=frozenset({"error"}))

# github.com/ollama/ollama docs/openai.md: `/v1` compatibility; no key is needed (one is sent only when
# configured, e.g. behind a proxy); unsupported fields (`tool_choice`, `logit_bias`, `user`, `n`) are
# ignored; `max_tokens` is the limit (`max_completion_tokens` would be ignored);
# `stream_options.include_usage` is supported.
OLLAMA = OpenAIQuirks(name="Ollama", renamed=_MAX_TOKENS)

# docs.vllm.ai (OpenAI-compatible server): takes the OpenAI parameters plus its own extra sampling
# parameters, and `stream_options.include_usage`: everything passes through.
VLLM = OpenAIQuirks(name="vLLM")

# learn.microsoft.com/azure/ai-services/openai/reference: the deployment is in the URL, the body is
# OpenAI's; streams take `stream_options.include_usage` (api-version 2024-10-21); a stream opens with
# a choices-less, id-less `prompt_filter_results` chunk, and asynchronous filtering sends choices with
# `content_filter_results` but no `delta`.
AZURE = OpenAIQuirks(name="Azure OpenAI", send_model=False, skip_annotation_chunks=True)
