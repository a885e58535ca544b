"""The contract every provider adapter passes, driven by recorded fixtures in ``fixtures/<type>/``.

Fixture kinds (JSON files, by name prefix):

- ``request_*``: ``model``, ``stream``, ``api_key``, OpenAI ``body`` → ``expected`` ``url``,
  ``headers`` and ``json``.
- ``response_*``: provider ``response`` → ``expected`` OpenAI fields (a subset; ``"<absent>"`` means
  the key must not be there).
- ``stream_*``: raw provider ``sse`` text → ``expected`` assembled ``choices``, ``usage`` (``null``: none),
  ``id``/``model``; or ``error`` (kind, retryable, message) for streams carrying an in-band error.
- ``error_*``: ``status``, ``headers``, provider ``body`` (JSON or raw text) → ``expected`` error fields.

A subclass names its provider type, adapter class and config; it adds only provider-specific tests.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import TypeAdapter

from schemas.config import ProviderConfig
from schemas.errors import GatewayError, RateLimited
from stages.providers.base import ProviderAdapter, SseEvent
from stages.providers.registry import adapter_for
from stages.providers.sse import SseParser

FIXTURES = Path(__file__).parent / "fixtures"
ABSENT = "<absent>"
REQUEST_ID = "0190d9a4-8e1b-7c3e-9f00-aabbccddeeff"
FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "function_call"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def assert_subset(expected: Any, actual: Any, where: str = "$") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if value == ABSENT:
                assert key not in actual, f"{where}.{key}: should be absent, got {actual[key]!r}"
            else:
                assert key in actual, f"{where}.{key}: missing in {actual!r}"
                assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: {actual!r} != {expected!r}"
        )
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def sse_events(raw: str, piece: int = 7) -> list[SseEvent]:
    """The fixture's SSE body as the worker would see it: bytes in small, arbitrary pieces."""
    data = raw.encode("utf-8")
    parser = SseParser()
    events: list[SseEvent] = []
    for start in range(0, len(data), piece):
        events += parser.feed(data[start : start + piece])
    return events + parser.flush()


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Accumulate chunks the way OpenAI SDKs do, checking the chunk order the contract promises."""
    choices: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] | None = None
    for n, chunk in enumerate(chunks):
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] == chunks[0]["id"] and chunk["model"] == chunks[0]["model"]
        assert isinstance(chunk["created"], int)
        if chunk.get("usage"):
            usage = chunk["usage"]
        if not chunk["choices"]:
            assert chunk.get("usage") and n == len(chunks) - 1, "a choices-less chunk is the last, usage one"
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if choice["index"] not in choices:
                assert delta.get("role") == "assistant", f"first chunk of choice lacks the role: {chunk}"
                choices[choice["index"]] = {"content": "", "tool_calls": {}, "finish_reason": None}
            state = choices[choice["index"]]
            assert state["finish_reason"] is None, f"delta after finish_reason: {chunk}"
            state["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                if call["index"] not in state["tool_calls"]:
                    assert call["id"] and call["function"]["name"], (
                        f"tool call starts without id/name: {call}"
                    )
                    state["tool_calls"][call["index"]] = {
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": "",
                    }
                state["tool_calls"][call["index"]]["arguments"] += call["function"].get("arguments") or ""
            if choice.get("finish_reason"):
                assert choice["finish_reason"] in FINISH_REASONS
                state["finish_reason"] = choice["finish_reason"]
    assembled = [
        {**state, "index": index, "tool_calls": [state["tool_calls"][i] for i in sorted(state["tool_calls"])]}
        for index, state in sorted(choices.items())
    ]
    return {
        "id": chunks[0]["id"] if chunks else None,
        "model": chunks[0]["model"] if chunks else None,
        "choices": assembled,
        "usage": usage,
    }


class ProviderContract:
    provider_type: ClassVar[str]
    adapter_class: ClassVar[type]
    config: ClassVar[dict[str, Any]]
    auth_header: ClassVar[str]

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def adapter(self) -> ProviderAdapter:
        return adapter_for(self.provider())

    def provider(self, **overrides: Any) -> ProviderConfig:
        config: ProviderConfig = TypeAdapter(ProviderConfig).validate_python({**self.config, **overrides})
        return config

    def fixtures(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        paths = sorted((FIXTURES / self.provider_type).glob(f"{prefix}_*.json"))
        assert paths, f"no {prefix}_*.json fixtures for {self.provider_type}"
        return [(p.name, load(p)) for p in paths]

    def fixture(self, name: str) -> dict[str, Any]:
        return load(FIXTURES / self.provider_type / name)

    def decode(self, events: list[SseEvent], model: str = "m") -> tuple[list[dict[str, Any]], Any]:
        decoder = self.adapter.stream_decoder(model=model, request_id=REQUEST_ID)
        chunks: list[dict[str, Any]] = []
        for event in events:
            chunks += decoder.feed(event)
        return chunks, decoder.state

    def classify(self, status: int, body: Any, headers: dict[str, str] | None = None) -> GatewayError:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return self.adapter.classify_error(status, headers or {}, raw)

    # -- registry and request -----------------------------------------------------------------------

    def test_registry_returns_this_adapter(self) -> None:
        assert isinstance(self.adapter, self.adapter_class)

    def test_request_fixtures(self) -> None:
        for name, fx in self.fixtures("request"):
            body = fx["body"]
            before = copy.deepcopy(body)
            call = self.adapter.to_provider_request(
                self.provider(), fx["model"], body, stream=fx["stream"], api_key=fx.get("api_key")
            )
            assert body == before, f"{name}: the canonical body was mutated"
            assert call.method == "POST", name
            assert call.url == fx["expected"]["url"], name
            assert call.headers == fx["expected"]["headers"], name
            assert call.json == fx["expected"]["json"], name
            assert json.loads(json.dumps(call.json)) == call.json, f"{name}: body is not plain JSON"

    def test_auth_header_is_omitted_without_a_key(self) -> None:
        _, fx = self.fixtures("request")[0]
        call = self.adapter.to_provider_request(
            self.provider(), fx["model"], fx["body"], stream=False, api_key=None
        )
        assert self.auth_header.lower() not in {k.lower() for k in call.headers}

    def test_configured_headers_are_sent(self) -> None:
        _, fx = self.fixtures("request")[0]
        call = self.adapter.to_provider_request(
            self.provider(headers={"x-tenant": "acme"}), fx["model"], fx["body"], stream=False, api_key="k"
        )
        assert call.headers["x-tenant"] == "acme"

    # -- responses ----------------------------------------------------------------------------------

    def test_response_fixtures(self) -> None:
        for name, fx in self.fixtures("response"):
            out = self.adapter.from_provider_response(
                fx["response"], model=fx.get("model", "m"), request_id=REQUEST_ID
            )
            assert out["object"] == "chat.completion", name
            assert isinstance(out["id"], str) and out["id"], name
            assert isinstance(out["created"], int), name
            for choice in out["choices"]:
                assert choice["message"]["role"] == "assistant", name
                assert choice["finish_reason"] in FINISH_REASONS, name
            if "usage" in out:
                usage = out["usage"]
                assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], name
            assert_subset(fx["expected"], out, name)

    # -- streams ------------------------------------------------------------------------------------

    def stream_fixtures(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, fx) for n, fx in self.fixtures("stream") if "expected" in fx]

    def test_stream_fixtures(self) -> None:
        for name, fx in self.stream_fixtures():
            chunks, state = self.decode(sse_events(fx["sse"]), fx.get("model", "m"))
            assert state.finished, f"{name}: the terminal event did not finish the stream"
            result = assemble(chunks)
            assert_subset(fx["expected"], result, name)
            expected_usage = fx["expected"]["usage"]
            if expected_usage is not None:
                assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == expected_usage, name
                assert state.prompt_tokens == expected_usage["prompt_tokens"], name
                assert state.completion_tokens == expected_usage["completion_tokens"], name
            assert state.finish_reason == result["choices"][-1]["finish_reason"], name

    def test_stream_decodes_the_same_in_any_piece_size(self) -> None:
        for name, fx in self.stream_fixtures():
            whole, _ = self.decode(sse_events(fx["sse"], piece=1 << 20))
            for piece in (1, 3, 64):
                pieces, _ = self.decode(sse_events(fx["sse"], piece=piece))
                strip = [{k: v for k, v in c.items() if k != "created"} for c in pieces]
                assert strip == [{k: v for k, v in c.items() if k != "created"} for c in whole], name

    def test_cut_stream_is_not_finished(self) -> None:
        for name, fx in self.stream_fixtures():
            events = sse_events(fx["sse"])
            _, state = self.decode(events[:-1])
            assert not state.finished, f"{name}: finished without the terminal event"
            raw = fx["sse"].encode()
            _, state = self.decode(sse_events(raw[: len(raw) // 2].decode("utf-8", errors="ignore")))
            assert not state.finished, f"{name}: a stream cut in half finished"

    def test_in_band_stream_errors_raise(self) -> None:
        fixtures = [(n, fx) for n, fx in self.fixtures("stream") if "error" in fx]
        assert fixtures, "no stream fixture with an in-band error"
        for name, fx in fixtures:
            with pytest.raises(GatewayError) as raised:
                self.decode(sse_events(fx["sse"]))
            self.check_error(name, raised.value, fx["error"])

    # -- errors -------------------------------------------------------------------------------------

    @staticmethod
    def check_error(name: str, error: GatewayError, expected: dict[str, Any]) -> None:
        assert type(error).__name__ == expected["kind"], f"{name}: {error!r}"
        assert error.retryable is expected["retryable"], f"{name}: {error!r}"
        assert expected["message"] in error.message, f"{name}: {error.message!r}"
        if "code" in expected:
            assert error.code == expected["code"], f"{name}: {error!r}"
        if "retry_after_s" in expected:
            assert error.retry_after_s == expected["retry_after_s"], f"{name}: {error.retry_after_s}"

    def test_error_fixtures(self) -> None:
        for name, fx in self.fixtures("error"):
            error = self.classify(fx["status"], fx["body"], fx.get("headers"))
            self.check_error(name, error, fx["expected"])

    def test_429_with_retry_after_is_a_retryable_rate_limit(self) -> None:
        error = self.classify(429, self.fixture("error_429.json")["body"], {"Retry-After": "7"})
        assert isinstance(error, RateLimited)
        assert error.retryable and error.retry_after_s == 7.0

    @pytest.mark.parametrize("status", [500, 502, 503, 529])
    def test_server_errors_are_retryable(self, status: int) -> None:
        assert self.classify(status, self.fixture("error_500.json")["body"]).retryable

    def test_400_is_not_retryable_and_keeps_the_provider_message(self) -> None:
        fx = self.fixture("error_400.json")
        error = self.classify(400, fx["body"])
        assert not error.retryable and error.status_code == 400
        assert fx["expected"]["message"] in error.message

    def test_context_length_400_stays_non_retryable(self) -> None:
        fx = self.fixture("error_400_context.json")
        error = self.classify(400, fx["body"])
        assert not error.retryable and error.code == "context_length_exceeded"

    def test_unreadable_error_body_falls_back_to_truncated_text(self) -> None:
        error = self.classify(502, "<html>" + "x" * 2000 + "</html>")
        assert "<html>" in error.message and "</html>" not in error.message
        assert len(error.message) < 600 and error.retryable
