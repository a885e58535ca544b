"""Stream failover (issue 4, item 5), end to end: official SDKs and raw SSE against a whole gateway.

- A failure before the first token (an HTTP error, a stream cut before any content, a provider that
  never answers) is retried / falls back transparently: the caller sees one normal stream, served by
  the next target, and the row and stage events record the failed attempts.
- A failure after the first token ends the stream with an in-band error event in the caller's own
  surface format (OpenAI: ``data: {"error": ...}``, no ``[DONE]``; Anthropic: ``event: error``), never
  a clean end; no other target is tried (the text the caller has cannot be continued); it is recorded.
- The deadline passing mid-stream ends the stream the same way, with a timeout code.

This module runs its own gateway: it scripts per-model faults on the mock provider, and a fault
scripted for the model a target asks for fails that target only (the next target asks for another
model name), which is how "the first target fails, the second works" is set up.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, mock_requests, start_gateway

pytestmark = pytest.mark.integration

# Model names as the mock provider sees them: scripted faults match on them, one per target.
OA_PRIMARY, OA_BACKUP = "sf-openai-primary", "sf-anthropic-backup"
AN_PRIMARY, AN_BACKUP = "sf-anthropic-primary", "sf-openai-backup"
TO_PRIMARY, TO_BACKUP = "sf-silent-primary", "sf-openai-backup-2"
# Aliases: primary on one wire format, backup on another, so the served provider tells them apart.
OPENAI_FIRST = "sf-openai-first"  # mock-openai → mock-anthropic
ANTHROPIC_FIRST = "sf-anthropic-first"  # mock-anthropic → mock-openai
SILENT_FIRST = "sf-silent-first"  # a provider with a 1 s read timeout → mock-openai
ALIAS_TARGETS = {
    OPENAI_FIRST: (("mock-openai", OA_PRIMARY), ("mock-anthropic", OA_BACKUP)),
    ANTHROPIC_FIRST: (("mock-anthropic", AN_PRIMARY), ("mock-openai", AN_BACKUP)),
    SILENT_FIRST: (("sf-impatient", TO_PRIMARY), ("mock-openai", TO_BACKUP)),
}
ROW_COLUMNS = ("status_code, error_type, error_code, provider, model_served, attempts, ttfb_ms, stream, "
               "completion_tokens, response_body, endpoint")


def failover_config(mock_port: int) -> dict[str, Any]:
    base = gateway_config(mock_port)
    providers = {**base["providers"], "sf-impatient": {
        "type": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1", "read_timeout_s": 1.0}}
    models = {**base["models"], **{
        alias: {"targets": [{"provider": provider, "model": model} for provider, model in targets]}
        for alias, targets in ALIAS_TARGETS.items()}}
    # No circuit breaker: these tests fail the primaries on purpose, and an open breaker would take
    # them out of later plans (breakers have their own tests).
    return gateway_config(mock_port, providers=providers, models=models, circuit_breaker={"enabled": False})


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("stream-failover"), failover_config(free_port()))
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(autouse=True)
def no_scripted_faults(gw: RunningGateway) -> Iterator[None]:
    httpx.delete(f"{gw.mock_url}/_mock/faults", timeout=5).raise_for_status()
    yield
    httpx.delete(f"{gw.mock_url}/_mock/faults", timeout=5).raise_for_status()


@pytest.fixture
def oai(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=DEMO_KEY, max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture
def claude(gw: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.base_url, api_key=DEMO_KEY, max_retries=0, timeout=60) as c:
        yield c


# -- helpers --------------------------------------------------------------------------------------


def script_fault(gw: RunningGateway, model: str, fault: str) -> None:
    """Every request the mock gets for ``model`` fails with ``fault`` (other models are untouched)."""
    httpx.post(f"{gw.mock_url}/_mock/faults", json={"fault": fault, "model": model},
               timeout=5).raise_for_status()


def marked(text: str) -> str:
    """``text`` with a random word of letters only (nothing redaction could take for PII), so this
    call's requests can be picked out of everything the mock recorded."""
    return f"{text} mark{''.join(random.choices(string.ascii_lowercase, k=12))}"


def provider_calls(gw: RunningGateway, prompt: str) -> list[str]:
    """The model of every request the mock received carrying ``prompt``, in order."""
    return [str(r["body"]["model"]) for r in mock_requests(gw)
            if isinstance(r["body"], dict) and prompt in json.dumps(r["body"])]


def request_row(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    rows = gw.wait_rows(f"SELECT {ROW_COLUMNS} FROM requests WHERE request_id = '{request_id}'",
                        lambda r: len(r) == 1)
    return rows[0]


def stage_events(gw: RunningGateway, request_id: str) -> list[dict[str, Any]]:
    """Stage events of a request (written in the same batch as its row, before it)."""
    rows = gw.wait_rows(f"SELECT stage, type, status, attrs FROM events WHERE request_id = '{request_id}' "
                        "ORDER BY ts", lambda r: any(e["type"] == "request.completed" for e in r))
    for row in rows:
        row["attrs"] = json.loads(row["attrs"] or "{}")
    return rows


def provider_attempts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for e in events if e["stage"] == "provider" for a in e["attrs"].get("attempts") or []]


def assert_failed_attempt_recorded(events: list[dict[str, Any]], target: str) -> None:
    failed = [a for a in provider_attempts(events) if a.get("target") == target and a.get("status") != 200]
    assert failed, f"no failed attempt on {target} in the stage events: {events}"


@dataclass(frozen=True)
class Sse:
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(raw: bytes) -> list[Sse]:
    events: list[Sse] = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
        if name is not None or data:
            events.append(Sse(name, "\n".join(data)))
    return events


@dataclass
class RawStream:
    status: int
    request_id: str
    events: list[Sse]


def post_stream(gw: RunningGateway, surface: str, model: str, prompt: str,
                headers: dict[str, str] | None = None) -> RawStream:
    """One streamed request with plain httpx; the SSE bytes exactly as the caller gets them."""
    if surface == "openai":
        path, auth = "/v1/chat/completions", {"authorization": f"Bearer {DEMO_KEY}"}
        body: dict[str, Any] = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    else:
        path, auth = "/v1/messages", {"x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01"}
        body = {"model": model, "stream": True, "max_tokens": 512, "messages": [{"role": "user", "content": prompt}]}
    with httpx.stream("POST", f"{gw.base_url}{path}", json=body, headers={**auth, **(headers or {})},
                      timeout=60) as response:
        raw = response.read()
    return RawStream(response.status_code, response.headers["x-gateway-request-id"], parse_sse(raw))


def openai_chunks(events: list[Sse]) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    for event in events:
        if event.data == "[DONE]":
            continue
        data = event.json()
        assert isinstance(data, dict)
        chunks.append(data)
    return chunks


def openai_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def finish_reasons(chunks: list[dict[str, Any]]) -> list[str]:
    return [ch["finish_reason"] for c in chunks for ch in c.get("choices") or [] if ch.get("finish_reason")]


def anthropic_text(events: list[Sse]) -> str:
    return "".join(e.json()["delta"].get("text") or "" for e in events if e.event == "content_block_delta")


def echo(prompt: str) -> str:
    return f"Echo: {prompt}"


# -- 1. a failure before the first token is invisible to the caller ---------------------------------

BEFORE_FIRST_TOKEN = [
    pytest.param(OPENAI_FIRST, "status=503", id="openai-wire-503"),
    pytest.param(OPENAI_FIRST, "cut_after=0", id="openai-wire-cut-before-content"),
    pytest.param(ANTHROPIC_FIRST, "status=503", id="anthropic-wire-503"),
    pytest.param(ANTHROPIC_FIRST, "status=529", id="anthropic-wire-529-overloaded"),
    pytest.param(ANTHROPIC_FIRST, "cut_after=0", id="anthropic-wire-cut-before-content"),
    pytest.param(SILENT_FIRST, "timeout", id="openai-wire-never-answers"),
]


def assert_served_by_backup(gw: RunningGateway, request_id: str, alias: str, prompt: str) -> None:
    (primary_provider, primary_model), (backup_provider, backup_model) = ALIAS_TARGETS[alias]
    calls = provider_calls(gw, prompt)
    assert calls[-1] == backup_model and calls.count(backup_model) == 1, calls
    assert primary_model in calls, calls
    row = request_row(gw, request_id)
    assert row["status_code"] == 200 and row["error_code"] == "" and row["stream"]
    assert (row["provider"], row["model_served"]) == (backup_provider, backup_model)
    assert row["attempts"] >= 2 and row["attempts"] == len(calls)
    assert row["ttfb_ms"] is not None
    events = stage_events(gw, request_id)
    assert_failed_attempt_recorded(events, f"{primary_provider}/{primary_model}")
    assert not [e for e in events if e["status"] == "error"], events


@pytest.mark.parametrize(("alias", "fault"), BEFORE_FIRST_TOKEN)
def test_openai_sse_before_first_token_falls_back_transparently(gw: RunningGateway, alias: str,
                                                                fault: str) -> None:
    script_fault(gw, ALIAS_TARGETS[alias][0][1], fault)
    prompt = marked("tell me a story")
    stream = post_stream(gw, "openai", alias, prompt)
    assert stream.status == 200
    assert stream.events[-1].data == "[DONE]"
    chunks = openai_chunks(stream.events)
    assert not [c for c in chunks if "error" in c], chunks
    roles = [c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("role")]
    assert len(roles) == 1  # the failed attempt's opening chunk never reached the caller
    assert openai_text(chunks) == echo(prompt)
    assert finish_reasons(chunks) == ["stop"]
    assert_served_by_backup(gw, stream.request_id, alias, prompt)


@pytest.mark.parametrize(("alias", "fault"), BEFORE_FIRST_TOKEN)
def test_anthropic_sse_before_first_token_falls_back_transparently(gw: RunningGateway, alias: str,
                                                                   fault: str) -> None:
    script_fault(gw, ALIAS_TARGETS[alias][0][1], fault)
    prompt = marked("tell me a story")
    stream = post_stream(gw, "anthropic", alias, prompt)
    assert stream.status == 200
    names = [e.event for e in stream.events if e.event != "ping"]
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    assert "error" not in names
    assert anthropic_text(stream.events) == echo(prompt)
    delta = next(e.json() for e in stream.events if e.event == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert_served_by_backup(gw, stream.request_id, alias, prompt)


def test_openai_sdk_before_first_token_falls_back(gw: RunningGateway, oai: openai.OpenAI) -> None:
    script_fault(gw, OA_PRIMARY, "status=503")
    prompt = marked("stream through the sdk")
    raw = oai.chat.completions.with_raw_response.create(
        model=OPENAI_FIRST, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": prompt}])
    text, finish, usage = [], [], None
    for chunk in raw.parse():
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert "".join(text) == echo(prompt)
    assert finish == ["stop"]
    assert usage is not None and usage.completion_tokens > 0
    assert_served_by_backup(gw, raw.headers["x-gateway-request-id"], OPENAI_FIRST, prompt)


def test_anthropic_sdk_before_first_token_falls_back(gw: RunningGateway, claude: anthropic.Anthropic) -> None:
    script_fault(gw, AN_PRIMARY, "cut_after=0")
    prompt = marked("stream through the sdk")
    with claude.messages.stream(model=ANTHROPIC_FIRST, max_tokens=256,
                                messages=[{"role": "user", "content": prompt}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-gateway-request-id"]
    assert text == echo(prompt)
    assert final.stop_reason == "end_turn"
    assert_served_by_backup(gw, request_id, ANTHROPIC_FIRST, prompt)


# -- 2 + 4. a failure after the first token ends the stream in-band; no other target is tried --------

CUT = "cut_after=3 chunk_chars=4"  # three 4-character content chunks, then the connection drops
CUT_TEXT_CHARS = 12


def assert_mid_stream_failure_recorded(gw: RunningGateway, request_id: str, alias: str, prompt: str,
                                       received: str, code: str = "stream_interrupted",
                                       status: int = 502) -> None:
    primary_provider, primary_model = ALIAS_TARGETS[alias][0]
    # One provider request: neither a retry nor the (working) backup could continue the caller's text.
    assert provider_calls(gw, prompt) == [primary_model]
    row = request_row(gw, request_id)
    assert (row["status_code"], row["error_code"]) == (status, code), row
    assert (row["provider"], row["model_served"], row["attempts"]) == (primary_provider, primary_model, 1)
    assert row["stream"] and row["ttfb_ms"] is not None and row["completion_tokens"] > 0
    assert json.loads(row["response_body"])["content"] == received  # what the caller got, recorded
    events = stage_events(gw, request_id)
    failed = [e for e in events if e["stage"] == "provider" and e["status"] == "error"]
    assert failed and failed[-1]["attrs"].get("error_code") == code, events
    assert failed[-1]["attrs"].get("chunks", 0) >= 1, events


@pytest.mark.parametrize("alias", [OPENAI_FIRST, ANTHROPIC_FIRST])
def test_openai_sse_cut_after_first_token_ends_with_an_error_event(gw: RunningGateway, alias: str) -> None:
    script_fault(gw, ALIAS_TARGETS[alias][0][1], CUT)
    prompt = marked("a long answer please")
    stream = post_stream(gw, "openai", alias, prompt)
    assert stream.status == 200
    assert all(e.data != "[DONE]" for e in stream.events)
    chunks = openai_chunks(stream.events)
    *content, last = chunks
    assert last == {"error": {"message": last["error"]["message"], "type": "upstream_error", "param": None,
                              "code": "stream_interrupted"}}
    assert not [c for c in content if "error" in c]
    assert finish_reasons(chunks) == []  # nothing presented as a finished answer
    received = openai_text(content)
    assert received == echo(prompt)[:CUT_TEXT_CHARS]
    assert_mid_stream_failure_recorded(gw, stream.request_id, alias, prompt, received)


@pytest.mark.parametrize("alias", [OPENAI_FIRST, ANTHROPIC_FIRST])
def test_anthropic_sse_cut_after_first_token_ends_with_an_error_event(gw: RunningGateway, alias: str) -> None:
    script_fault(gw, ALIAS_TARGETS[alias][0][1], CUT)
    prompt = marked("a long answer please")
    stream = post_stream(gw, "anthropic", alias, prompt)
    assert stream.status == 200
    names = [e.event for e in stream.events if e.event != "ping"]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error" and names.count("error") == 1
    assert not {"message_delta", "message_stop"} & set(names), names
    error = stream.events[-1].json()
    assert error == {"type": "error", "error": {"type": "api_error", "message": error["error"]["message"]}}
    received = anthropic_text(stream.events)
    assert received == echo(prompt)[:CUT_TEXT_CHARS]
    assert_mid_stream_failure_recorded(gw, stream.request_id, alias, prompt, received)


def test_openai_sdk_raises_on_a_mid_stream_cut(gw: RunningGateway, oai: openai.OpenAI) -> None:
    script_fault(gw, OA_PRIMARY, CUT)
    prompt = marked("a long answer please")
    raw = oai.chat.completions.with_raw_response.create(
        model=OPENAI_FIRST, stream=True, messages=[{"role": "user", "content": prompt}])
    text, finish = [], []
    with pytest.raises(openai.APIError) as err:
        for chunk in raw.parse():
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
    assert err.value.code == "stream_interrupted" and err.value.type == "upstream_error"
    assert "".join(text) == echo(prompt)[:CUT_TEXT_CHARS] and finish == []
    assert_mid_stream_failure_recorded(gw, raw.headers["x-gateway-request-id"], OPENAI_FIRST, prompt,
                                       "".join(text))


def test_anthropic_sdk_raises_on_a_mid_stream_cut(gw: RunningGateway, claude: anthropic.Anthropic) -> None:
    script_fault(gw, AN_PRIMARY, CUT)
    prompt = marked("a long answer please")
    text: list[str] = []
    with claude.messages.stream(model=ANTHROPIC_FIRST, max_tokens=256,
                                messages=[{"role": "user", "content": prompt}]) as stream:
        request_id = stream.response.headers["x-gateway-request-id"]
        with pytest.raises(anthropic.APIStatusError) as err:
            for piece in stream.text_stream:
                text.append(piece)
    assert isinstance(err.value.body, dict) and err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "api_error"
    assert "".join(text) == echo(prompt)[:CUT_TEXT_CHARS]
    assert_mid_stream_failure_recorded(gw, request_id, ANTHROPIC_FIRST, prompt, "".join(text))


# -- 3. the deadline passing mid-stream ------------------------------------------------------------

# The first content arrives after one chunk delay (0.3 s), well inside the 3 s deadline; the whole
# answer would take ≈ 20 s, well past it.
SLOW = "[[mock chunk_delay_ms=300 chunk_chars=8]]"
DEADLINE = {"x-gateway-timeout-ms": "3000"}


def slow_prompt() -> str:
    return marked("lorem ipsum dolor sit amet " * 20)


def assert_deadline_recorded(gw: RunningGateway, request_id: str, prompt: str) -> None:
    assert provider_calls(gw, prompt) == [OA_PRIMARY]
    row = request_row(gw, request_id)
    assert (row["status_code"], row["error_type"], row["error_code"]) == (504, "timeout_error", "deadline_exceeded")
    assert row["stream"] and row["ttfb_ms"] is not None


def test_openai_sse_deadline_mid_stream_ends_with_a_timeout_error(gw: RunningGateway) -> None:
    prompt = slow_prompt()
    stream = post_stream(gw, "openai", OPENAI_FIRST, f"{prompt} {SLOW}", headers=DEADLINE)
    assert stream.status == 200
    assert all(e.data != "[DONE]" for e in stream.events)
    *content, last = openai_chunks(stream.events)
    assert last["error"]["code"] == "deadline_exceeded" and last["error"]["type"] == "timeout_error"
    assert finish_reasons(content) == []
    received = openai_text(content)
    assert received and echo(prompt).startswith(received) and received != echo(prompt)
    assert_deadline_recorded(gw, stream.request_id, prompt)


def test_anthropic_sdk_deadline_mid_stream_raises_a_timeout_error(gw: RunningGateway,
                                                                  claude: anthropic.Anthropic) -> None:
    prompt = slow_prompt()
    text: list[str] = []
    with claude.messages.stream(model=OPENAI_FIRST, max_tokens=512, extra_headers=DEADLINE,
                                messages=[{"role": "user", "content": f"{prompt} {SLOW}"}]) as stream:
        request_id = stream.response.headers["x-gateway-request-id"]
        with pytest.raises(anthropic.APIStatusError) as err:
            for piece in stream.text_stream:
                text.append(piece)
    assert isinstance(err.value.body, dict) and err.value.body["error"]["type"] == "timeout_error"
    received = "".join(text)
    assert received and echo(prompt).startswith(received) and received != echo(prompt)
    assert_deadline_recorded(gw, request_id, prompt)
