"""The official openai SDK, unmodified, against the whole gateway (real NATS, chDB, mock provider)."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from infra.operator.launcher import RunningGateway, mock_requests

pytestmark = pytest.mark.integration


def directive(**kw: object) -> str:
    return "[[mock " + " ".join(f"{k}={v}" for k, v in kw.items()) + "]]"


def test_chat_completion_round_trip(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert raw.headers["x-gateway-request-id"]
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me a reply please"}],
        stream=True, stream_options={"include_usage": True})
    text, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(text) == "Echo: stream me a reply please"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_models_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash"} <= ids


@pytest.mark.parametrize("model", ["claude-3-5-haiku", "gemini-2.0-flash", "command-r", "nova-lite"])
def test_other_wire_formats(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Echo: hi"
    chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi again"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi again"


def test_pii_never_reaches_the_provider_and_is_restored(client: openai.OpenAI, gateway: RunningGateway) -> None:
    email, phone = "jane.doe@example.com", "+1 (415) 555-0132"
    prompt = f"Contact {email} or call {phone} about card 4111 1111 1111 1111"
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    request_id = raw.headers["x-gateway-request-id"]
    answer = raw.parse().choices[0].message.content or ""
    assert email in answer and "4111 1111 1111 1111" in answer  # restored in the answer
    received = [r for r in mock_requests(gateway) if "Contact" in str(r["body"])]
    assert received, "the mock provider saw no request"
    sent = str(received[-1]["body"])
    assert email not in sent and "4111" not in sent and "555-0132" not in sent
    assert "<EMAIL_ADDRESS_1>" in sent
    rows = gateway.wait_rows(f"SELECT redactions, request_body, response_body FROM requests "
                             f"WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    assert rows[0]["redactions"] >= 3
    assert email not in rows[0]["request_body"] and email not in rows[0]["response_body"]


def test_output_pii_split_across_chunks_is_redacted(client: openai.OpenAI) -> None:
    reply = "Write to leaked.person@corp-mail.com today."
    b64 = base64.b64encode(reply.encode()).decode()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": f"go {directive(reply_b64=b64, chunk_chars=11)}"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "leaked.person@corp-mail.com" not in text
    assert "<EMAIL_ADDRESS>" in text and text.startswith("Write to ") and text.endswith(" today.")


def test_blocked_pattern_is_refused(client: openai.OpenAI) -> None:
    b64 = base64.b64encode(b"the code is TOP-SECRET-ALPHA").decode()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": f"x {directive(reply_b64=b64)}"}])
    assert err.value.code == "content_blocked"


def test_retry_honours_retry_after_then_succeeds(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"retry {directive(fail_times=1, key='r1', status=429, retry_after=1)}"}])
    assert raw.parse().choices[0].message.content == "Echo: retry"
    request_id = raw.headers["x-gateway-request-id"]
    rows = gateway.wait_rows(f"SELECT attempts, provider FROM requests WHERE request_id = '{request_id}'",
                             lambda r: len(r) == 1)
    assert rows[0]["attempts"] == 2 and rows[0]["provider"] == "mock-openai"


def test_fallback_to_next_target(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fallback-demo", messages=[{"role": "user", "content": "fall back"}])
    assert raw.parse().choices[0].message.content == "Echo: fall back"
    request_id = raw.headers["x-gateway-request-id"]
    rows = gateway.wait_rows(f"SELECT provider, model_served, attempts FROM requests "
                             f"WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    assert rows[0]["provider"] == "mock-gemini" and rows[0]["attempts"] == 3


def test_all_targets_failing_is_a_clear_5xx(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="all-dead", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 502
    assert err.value.code == "all_targets_failed"


def test_deadline_gives_504(gateway: RunningGateway) -> None:
    response = httpx.post(
        f"{gateway.base_url}/v1/chat/completions", timeout=30,
        headers={"authorization": "Bearer sk-gateway-demo", "x-gateway-timeout-ms": "400"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": directive(latency_ms=3000)}]})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


def test_stream_cut_midway_ends_with_an_error_event(gateway: RunningGateway) -> None:
    with httpx.stream("POST", f"{gateway.base_url}/v1/chat/completions", timeout=30,
                      headers={"authorization": "Bearer sk-gateway-demo"},
                      json={"model": "gpt-4o-mini", "stream": True, "messages": [
                          {"role": "user", "content": f"a long answer please {directive(cut_after=2)}"}]}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert '"error"' in lines[-1] and "stream_interrupted" in lines[-1]
    assert "data: [DONE]" not in lines


def test_every_request_is_one_row_with_stage_events(client: openai.OpenAI, gateway: RunningGateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}])
    request_id = raw.headers["x-gateway-request-id"]
    rows = gateway.wait_rows(
        "SELECT tenant, api_key_id, model_requested, model_served, provider, stream, status_code, error_type, "
        "prompt_tokens, completion_tokens, cost_usd, latency_ms, gateway_overhead_ms, attempts, redactions "
        f"FROM requests WHERE request_id = '{request_id}'", lambda r: len(r) == 1)
    row = rows[0]
    assert row["tenant"] == "acme" and row["api_key_id"] == "demo" and row["status_code"] == 200
    assert row["provider"] == "mock-openai" and row["model_requested"] == "gpt-4o-mini"
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["attempts"] == 1
    assert float(row["cost_usd"]) > 0
    assert row["latency_ms"] >= row["gateway_overhead_ms"] >= 0
    events = gateway.wait_rows(f"SELECT stage, type FROM events WHERE request_id = '{request_id}'",
                               lambda r: len(r) >= 6)
    stages = {e["stage"] for e in events}
    assert {"redaction", "policy", "routing", "provider", "output_filter"} <= stages


def test_cost_comes_from_the_catalog_or_is_unpriced(client: openai.OpenAI, gateway: RunningGateway) -> None:
    ids = {}
    for model in ("gemini-2.0-flash", "house-model"):  # priced by the shipped catalog / in no catalog
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "what does it cost"}])
        ids[model] = raw.headers["x-gateway-request-id"]
    rows = {r["model_requested"]: r for r in gateway.wait_rows(
        "SELECT model_requested, cost_usd, prompt_tokens, usage_source FROM requests "
        f"WHERE request_id IN ('{ids['gemini-2.0-flash']}', '{ids['house-model']}')", lambda r: len(r) == 2)}
    gemini = rows["gemini-2.0-flash"]
    assert float(gemini["cost_usd"]) > 0 and gemini["usage_source"] == "provider"
    assert rows["house-model"]["cost_usd"] is None  # unpriced, never $0
    assert rows["house-model"]["prompt_tokens"] > 0


def test_gateway_sql_refuses_writes(gateway: RunningGateway) -> None:
    with pytest.raises(AssertionError, match="read-only"):
        gateway.sql("DROP TABLE requests")
    assert gateway.sql("SELECT count() AS n FROM requests")[0]["n"] >= 0
