"""The provider attempt loop: retries with backoff, Retry-After, fallbacks, deadline, stream opening.

httpx.MockTransport stands in for the providers (the outside world); the loop is ours."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from schemas.config import GatewayConfig
from schemas.envelope import Envelope
from schemas.errors import ConfigInvalid
from schemas.wire import replace
from stages.routing import RequestFacts, Router
from workers.provider_calls import CallFailed, ProviderCaller, resolve_secret

OK = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


class Chunks(httpx.AsyncByteStream):
    """A response body that arrives in pieces, as over a socket."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


def config(targets: list[str], attempts: int = 2) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {name: {"type": "openai", "base_url": f"http://{name}.test/v1"} for name in ("a", "b")},
        "models": {"m": {"targets": [{"provider": t, "model": f"{t}-model"} for t in targets]}},
        "retry": {"attempts_per_target": attempts, "base_delay_ms": 1, "max_delay_ms": 5, "max_retry_after_s": 1,
                  "total_backoff_cap_ms": 2000},
    })


def envelope(cfg: GatewayConfig, timeout_s: float = 10.0, stream: bool = False) -> Envelope:
    now = time.time()
    return Envelope(request_id="r1", received_at=now, deadline=now + timeout_s, reply_to="x", stream=stream,
                    body={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream},
                    model_requested="m", plan=Router(cfg, lambda t: None).plan(RequestFacts(model="m")).targets)


def caller(cfg: GatewayConfig, handler: Callable[[httpx.Request], httpx.Response]) -> ProviderCaller:
    return ProviderCaller(cfg, httpx.MockTransport(handler))


async def test_first_target_answers() -> None:
    cfg = config(["a", "b"])
    result = await caller(cfg, lambda r: httpx.Response(200, json=OK)).call(envelope(cfg), stream=False)
    assert result.target.provider == "a" and result.response is not None
    assert [a.status for a in result.attempts] == [200]


async def test_the_call_goes_to_the_transport_with_its_timeout_and_a_user_agent() -> None:
    cfg = config(["a"])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK)

    await caller(cfg, handler).call(envelope(cfg, timeout_s=7.0), stream=False)
    (request,) = seen
    assert request.headers["user-agent"] == "llm-gateway"
    assert request.headers["content-type"] == "application/json" and request.method == "POST"
    assert 0 < request.extensions["timeout"]["read"] <= 7.0  # the deadline bounds the read timeout


async def test_retry_honours_retry_after_then_succeeds() -> None:
    cfg = config(["a"])
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"retry-after": "0.3"}, json={"error": {"message": "slow down"}})
        return httpx.Response(200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert [a.status for a in result.attempts] == [429, 200]
    assert calls[1] - calls[0] >= 0.3
    # the wait it asked for is the provider's time: not gateway overhead, not a queue for ingress's overload rule
    assert result.provider_ms >= 300


async def test_retry_after_beyond_the_cap_moves_to_the_next_target() -> None:
    cfg = config(["a", "b"])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a.test":
            return httpx.Response(429, headers={"retry-after": "30"}, json={"error": {"message": "later"}})
        return httpx.Response(200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test", "b.test"]  # no 30 s wait on a: straight to b
    assert result.target.provider == "b"


async def test_server_errors_fall_back_after_the_retries() -> None:
    cfg = config(["a", "b"], attempts=2)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(503 if request.url.host == "a.test" else 200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test", "a.test", "b.test"]
    assert [a.status for a in result.attempts] == [502, 502, 200]


async def test_client_errors_are_neither_retried_nor_fallen_back() -> None:
    cfg = config(["a", "b"])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(400, json={"error": {"message": "messages.0.content is wrong"}})

    with pytest.raises(CallFailed) as failed:
        await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test"]
    assert failed.value.error.status_code == 400 and "messages.0.content is wrong" in failed.value.error.message


async def test_bad_provider_credentials_fall_back_without_retrying() -> None:
    cfg = config(["a", "b"])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a.test":
            return httpx.Response(401, json={"error": {"message": "bad key"}})
        return httpx.Response(200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test", "b.test"] and result.target.provider == "b"


async def test_all_targets_failing_names_every_attempt() -> None:
    cfg = config(["a", "b"], attempts=1)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(CallFailed) as failed:
        await caller(cfg, handler).call(envelope(cfg), stream=False)
    error = failed.value.error
    assert error.code == "all_targets_failed" and "a/a-model" in error.message and "b/b-model" in error.message
    assert len(failed.value.attempts) == 2


async def test_an_expired_deadline_stops_the_chain() -> None:
    cfg = config(["a", "b"])
    with pytest.raises(CallFailed) as failed:
        await caller(cfg, lambda r: httpx.Response(200, json=OK)).call(envelope(cfg, timeout_s=-1), stream=False)
    assert failed.value.error.status_code == 504 and failed.value.attempts == []


async def test_a_stream_cut_before_its_first_token_is_retried() -> None:
    cfg = config(["a"])
    role = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    token = {**role, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:  # a role chunk only, then the connection ends: no payload was produced
            return httpx.Response(200, stream=Chunks(b"data: " + orjson.dumps(role) + b"\n\n"))
        pieces = [b"data: " + orjson.dumps(c) + b"\n\n" for c in (role, token)]
        return httpx.Response(200, stream=Chunks(*pieces, b"data: [DONE]\n\n"))

    result = await caller(cfg, handler).call(envelope(cfg, stream=True), stream=True)
    assert calls == 2 and result.stream is not None
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") == "hi" for c in result.stream.first_chunks)
    await result.stream.response.aclose()


async def test_every_target_rate_limited_is_a_429_with_retry_after() -> None:
    cfg = config(["a", "b"], attempts=1)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "0.5"}, json={"error": {"message": "busy"}})

    with pytest.raises(CallFailed) as failed:
        await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert failed.value.error.status_code == 429 and failed.value.error.retry_after_s == 0.5
    assert "a/a-model" in failed.value.error.message and "b/b-model" in failed.value.error.message


# -- settings from the routing tree ----------------------------------------------------------------

def tree_config(route: dict[str, object], **extra: object) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {name: {"type": "openai", "base_url": f"http://{name}.test/v1"} for name in ("a", "b")},
        "models": {"m": {"route": route}},
        "retry": {"attempts_per_target": 2, "base_delay_ms": 1, "max_delay_ms": 5},
        **extra,
    })


def two(**node: object) -> dict[str, object]:
    return {"type": "fallback", "children": [{"provider": "a", "model": "a-model"},
                                             {"provider": "b", "model": "b-model"}], **node}


async def test_on_status_codes_can_make_a_400_fall_back() -> None:
    cfg = tree_config(two(on_status_codes=[400, 500]))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a.test":
            return httpx.Response(400, json={"error": {"message": "context length exceeded"}})
        return httpx.Response(200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test", "b.test"]  # a 400 is never retried on the same target
    assert result.target.provider == "b"
    assert [(a.upstream_status, a.status) for a in result.attempts] == [(400, 400), (200, 200)]


async def test_a_status_outside_on_status_codes_ends_the_request() -> None:
    cfg = tree_config(two(on_status_codes=[429]))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(503, json={"error": {"message": "down"}})

    with pytest.raises(CallFailed) as failed:
        await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test"] and failed.value.error.status_code == 502


async def test_unknown_model_at_one_target_goes_to_the_next_without_retrying() -> None:
    cfg = tree_config(two())
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a.test":
            return httpx.Response(404, json={"error": {"message": "no such model"}})
        return httpx.Response(200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["a.test", "b.test"] and result.target.provider == "b"


async def test_each_target_uses_its_own_attempts_and_timeout() -> None:
    cfg = tree_config({"type": "fallback", "children": [
        {"provider": "a", "model": "a-model", "timeout_s": 0.05, "retry": {"attempts_per_target": 3}},
        {"provider": "b", "model": "b-model", "retry": {"attempts_per_target": 1}}]})
    seen: list[tuple[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # MockTransport does not enforce timeouts: check the one the call set, then act it out
        read_timeout = request.extensions["timeout"]["read"]
        seen.append((request.url.host, read_timeout))
        if request.url.host == "a.test":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(500, json={"error": {"message": "boom"}})

    with pytest.raises(CallFailed) as failed:
        await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert [host for host, _ in seen] == ["a.test"] * 3 + ["b.test"]
    assert [t for _, t in seen[:3]] == [0.05] * 3 and seen[3][1] > 5  # b: the provider's read timeout
    assert [a.code for a in failed.value.attempts] == ["provider_timeout"] * 3 + ["provider_500"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def begin(self, target_id: str) -> None:
        self.events.append(("begin", target_id))

    def end(self, target_id: str, outcome: str, ms: float, probe: bool = False) -> None:
        self.events.append(("end", target_id, outcome, str(probe)))


async def test_every_attempt_reports_its_outcome_for_breakers_and_latency() -> None:
    cfg = tree_config(two(), retry={"attempts_per_target": 1})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.test":
            return httpx.Response(503, json={"error": {"message": "down"}})
        return httpx.Response(200, json=OK)

    recorder = Recorder()
    env = envelope(cfg)
    env = replace(env, plan=[env.plan[0].model_copy(update={"probe": True}), env.plan[1]])
    await ProviderCaller(cfg, httpx.MockTransport(handler), recorder).call(
        env, stream=False)
    assert recorder.events == [("begin", "a/a-model"), ("end", "a/a-model", "fail", "True"),
                               ("begin", "b/b-model"), ("end", "b/b-model", "ok", "False")]


async def test_a_client_error_is_neutral_for_the_breaker() -> None:
    cfg = tree_config(two())
    recorder = Recorder()
    with pytest.raises(CallFailed):
        await ProviderCaller(cfg, httpx.MockTransport(
            lambda r: httpx.Response(400, json={"error": {"message": "bad"}})), recorder).call(envelope(cfg),
                                                                                           stream=False)
    assert recorder.events[-1][2] == "neutral"


def _with_key(cfg: GatewayConfig, provider: str, ref: str) -> GatewayConfig:
    data = cfg.model_dump()
    data["providers"][provider]["api_key"] = ref
    return GatewayConfig.model_validate(data)


async def test_the_key_a_provider_references_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _with_key(config(["a"]), "a", "env:GW_UNIT_PROVIDER_KEY")
    monkeypatch.setenv("GW_UNIT_PROVIDER_KEY", "sk-from-env")
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=OK)

    await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["Bearer sk-from-env"]


async def test_a_missing_key_variable_names_it_and_asks_for_a_restart(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    cfg = _with_key(config(["a", "b"]), "a", "env:GW_UNIT_MISSING_KEY")
    monkeypatch.delenv("GW_UNIT_MISSING_KEY", raising=False)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(200, json=OK)

    result = await caller(cfg, handler).call(envelope(cfg), stream=False)
    assert seen == ["b.test"] and result.target.provider == "b"  # a cannot serve, and is not retried
    assert [a.code for a in result.attempts[:1]] == ["provider_secret_missing"]

    with pytest.raises(ConfigInvalid) as missing:
        resolve_secret("env:GW_UNIT_MISSING_KEY", "providers.a.api_key")
    message = missing.value.message
    assert "providers.a.api_key" in message and "GW_UNIT_MISSING_KEY" in message and "restart" in message
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.provider"] == [message]  # logged once
