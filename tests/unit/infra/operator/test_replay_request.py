"""`gateway replay`: the request that resends a logged one (surface, body, the replay_of tag, the user),
sending it (a stream read to its end) against ``httpx.MockTransport``, and the CLI's input checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import orjson
import pytest

from infra.operator import cli
from infra.operator.replay import CANDIDATE_LIVE_REFUSED, options_of
from infra.operator.replay_record import ReplayRefused
from infra.operator.replay_request import (
    ReplayCall,
    error_message,
    replay_call,
    replay_tags,
    send_replay,
)
from tests.unit.infra.operator.replay_rows import REQUEST_ID, logged


def test_chat_is_resent_as_recorded_and_tagged() -> None:
    call = replay_call(logged(user="u-7"), "sk-op")
    assert call.path == "/v1/chat/completions" and not call.stream
    assert call.body == logged().body()
    assert call.headers["authorization"] == "Bearer sk-op" and call.headers["x-gateway-user"] == "u-7"
    assert orjson.loads(call.headers["x-gateway-tags"]) == {"team": "search", "replay_of": REQUEST_ID}


def test_embeddings_go_to_their_endpoint() -> None:
    body = orjson.dumps({"model": "text-embedding-3-small", "input": ["a"]}).decode()
    call = replay_call(logged(endpoint="embeddings", request_body=body), "k")
    assert call.path == "/v1/embeddings" and call.body == {"model": "text-embedding-3-small", "input": ["a"]}
    assert "x-gateway-user" not in call.headers


def test_messages_are_turned_back_into_the_anthropic_shape() -> None:
    canonical = {"model": "claude-3-5-haiku", "max_tokens": 32, "stream": True,
                 "stream_options": {"include_usage": True},
                 "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}
    call = replay_call(logged(endpoint="messages", model_requested="claude-3-5-haiku", stream=True,
                              request_body=orjson.dumps(canonical).decode()), "k")
    assert call.path == "/v1/messages" and call.stream and call.headers["anthropic-version"]
    assert call.body["model"] == "claude-3-5-haiku" and call.body["max_tokens"] == 32
    assert call.body["system"] == "Be brief." and call.body["stream"] is True
    assert call.body["messages"][0]["role"] == "user"


def test_too_many_tags_for_the_mark() -> None:
    full = {f"t{i}": "v" for i in range(32)}
    with pytest.raises(ReplayRefused, match="limit of 32"):
        replay_tags(logged(tags=full))
    assert replay_tags(logged(tags={**dict(list(full.items())[:31])}))["replay_of"] == REQUEST_ID


def test_error_bodies_of_both_surfaces() -> None:
    assert error_message(b'{"error": {"message": "bad key", "code": "invalid_api_key"}}') == "invalid_api_key: bad key"
    assert error_message(b'{"type": "error", "error": {"type": "not_found_error", "message": "no"}}') \
        == "not_found_error: no"
    assert error_message(b"<html>") == "<html>"


async def test_send_reads_a_stream_to_its_end_and_takes_the_new_id() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"x-gateway-request-id": "new-id", "content-type": "text/event-stream"},
                              content=b"data: {}\n\ndata: [DONE]\n\n")

    call = ReplayCall("/v1/chat/completions", {"stream": True}, {"authorization": "Bearer k"}, True)
    got = await send_replay("http://gw/", call, 5, transport=httpx.MockTransport(answer))
    assert (got.status, got.request_id, got.error) == (200, "new-id", "")
    assert str(seen[0].url) == "http://gw/v1/chat/completions" and orjson.loads(seen[0].content) == {"stream": True}


async def test_send_keeps_the_chains_refusal() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"x-gateway-request-id": "r"},
                              json={"error": {"message": "no", "code": "invalid_api_key"}})

    call = ReplayCall("/v1/embeddings", {}, {}, False)
    got = await send_replay("http://gw", call, 5, transport=httpx.MockTransport(answer))
    assert (got.status, got.error) == (401, "invalid_api_key: no")


async def test_an_unreachable_gateway_says_what_to_check() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ReplayRefused, match="cannot reach the gateway at http://gw.*--url"):
        await send_replay("http://gw", ReplayCall("/v1/embeddings", {}, {}, False), 5,
                          transport=httpx.MockTransport(refuse))


def args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["replay", *argv])


def test_options(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_API_KEY", "OPENAI_API_KEY", "GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_PORT", "9123")
    opts = options_of(args(REQUEST_ID.upper(), "--key", "sk-1", "--json"))
    assert opts.request_id == REQUEST_ID and opts.api_key == "sk-1" and opts.as_json and not opts.dry_run
    assert opts.base_url == "http://127.0.0.1:9123"
    monkeypatch.setenv("GATEWAY_API_KEY", "sk-env")
    assert options_of(args(REQUEST_ID, "--url", "http://gw:1/")).api_key == "sk-env"
    dry = options_of(args(REQUEST_ID, "--dry-run", "--config", "c.yaml"))
    assert dry.dry_run and dry.api_key is None and str(dry.config) == "c.yaml"


def test_input_refused_before_anything_is_read(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("GATEWAY_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["replay", REQUEST_ID, "--config", "c.yaml", "--key", "k"]) == 2
    assert CANDIDATE_LIVE_REFUSED in capsys.readouterr().err
    assert cli.main(["replay", REQUEST_ID]) == 2
    assert "GATEWAY_API_KEY" in capsys.readouterr().err
    assert cli.main(["replay", "nope", "--dry-run"]) == 2
    assert "not a request id" in capsys.readouterr().err


def test_a_candidate_config_error_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nmodels:\n  m:\n    targets: [{provider: nope, model: x}]\n")
    assert cli.main(["replay", REQUEST_ID, "--dry-run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "models.m" in err
