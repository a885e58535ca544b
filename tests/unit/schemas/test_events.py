"""The per-request record: ``RequestCompleted.from_envelope`` (what every stage that ends a request
publishes) and the event kinds."""

from __future__ import annotations

import types
import uuid
from typing import Any

import orjson
import pytest

from schemas import events
from schemas.envelope import Envelope, Usage
from schemas.errors import ContentBlocked, ProviderTimeout
from schemas.events import EventType, RequestCompleted, StageEvent
from schemas.guardrails import Verdict
from schemas.wire import convert, decode, encode, replace

RECEIVED = 1_700_000_000.0


def make_envelope(**update: Any) -> Envelope:
    values: dict[str, Any] = {
        "request_id": "0190f0c4-0000-7000-8000-000000000001",
        "received_at": RECEIVED,
        "deadline": RECEIVED + 120,
        "reply_to": "gw.reply.ing.r",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "mail <EMAIL_ADDRESS_1>"}],
                 "user": "alice"},
        "model_requested": "gpt-4o-mini",
    }
    values.update(update)
    return convert(values, Envelope)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Frozen wall clock for schemas.events."""
    fake = types.SimpleNamespace(now=RECEIVED + 1.5)
    monkeypatch.setattr(events, "time", types.SimpleNamespace(time=lambda: fake.now))
    return fake


# -- from_envelope ----------------------------------------------------------------------------------


def test_latency_and_overhead_from_envelope_timings(clock: types.SimpleNamespace) -> None:
    env = make_envelope(provider_ms=1200.25, ttfb_ms=300.0)
    record = RequestCompleted.from_envelope(env, stage="provider", status=200, stored_response={"id": "x"})
    assert record.ts == RECEIVED and record.finished_at == clock.now
    assert record.latency_ms == 1500.0
    assert record.provider_ms == 1200.25
    assert record.gateway_overhead_ms == 299.75
    assert record.ttfb_ms == 300.0


def test_overhead_never_negative(clock: types.SimpleNamespace) -> None:
    record = RequestCompleted.from_envelope(make_envelope(provider_ms=9_000.0), stage="provider", status=200)
    assert record.gateway_overhead_ms == 0.0


def test_success_record_fields(clock: types.SimpleNamespace) -> None:
    env = make_envelope(
        tenant="acme", api_key_id="demo", provider="mock-openai", model_served="gpt-4o-mini-2024", stream=True,
        usage=Usage(prompt_tokens=12, completion_tokens=34, source="estimated"), cost_usd="0.000012000",
        attempts=2, delivery=3, redactions={"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1},
        output_findings={"IP_ADDRESS": 1}, stage_ms={"policy": 0.2},
    )
    record = RequestCompleted.from_envelope(env, stage="output_filter", status=200, stored_response={"choices": []})
    assert uuid.UUID(record.event_id).version == 7
    assert (record.request_id, record.stage, record.status_code) == (env.request_id, "output_filter", 200)
    assert (record.tenant, record.api_key_id, record.user) == ("acme", "demo", "alice")
    assert (record.provider, record.model_requested, record.model_served) == (
        "mock-openai", "gpt-4o-mini", "gpt-4o-mini-2024")
    assert (record.prompt_tokens, record.completion_tokens, record.usage_source) == (12, 34, "estimated")
    assert record.cost_usd == "0.000012000"
    assert (record.attempts, record.delivery, record.stream) == (2, 3, True)
    assert record.redactions == 3 and record.redaction_counts == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert record.output_findings == {"IP_ADDRESS": 1} and record.stage_ms == {"policy": 0.2}
    assert (record.error_type, record.error_code, record.error_message) == ("", "", "")
    assert orjson.loads(record.response_body) == {"choices": []}


def test_request_body_only_after_redaction(clock: types.SimpleNamespace) -> None:
    env = make_envelope()
    assert RequestCompleted.from_envelope(env, stage="policy", status=200).request_body == ""
    redacted = replace(env, redacted=True)
    assert orjson.loads(RequestCompleted.from_envelope(redacted, stage="policy", status=200).request_body) == env.body


def test_error_fields(clock: types.SimpleNamespace) -> None:
    info = ProviderTimeout("the provider did not answer in 30 s").info()
    record = RequestCompleted.from_envelope(make_envelope(), stage="provider", status=504, error=info)
    assert record.status_code == 504
    assert (record.error_type, record.error_code, record.error_message) == (
        "timeout_error", "provider_timeout", "the provider did not answer in 30 s")
    assert record.response_body == ""


def test_defaults_for_a_request_that_stopped_early(clock: types.SimpleNamespace) -> None:
    env = make_envelope(body={"model": "m", "messages": []})
    record = RequestCompleted.from_envelope(env, stage="redaction", status=400)
    assert (record.tenant, record.api_key_id, record.user, record.provider, record.model_served) == ("",) * 5
    assert (record.prompt_tokens, record.completion_tokens, record.usage_source) == (0, 0, "")
    assert record.cost_usd is None and record.ttfb_ms is None
    assert (record.tags, record.config_version, record.route_path, record.experiment, record.variant) == (
        {}, "", "", "", "")


def test_request_metadata_and_routing_decision_are_recorded(clock: types.SimpleNamespace) -> None:
    env = make_envelope(user="header-user", tags={"team": "ml"}, headers={"x-gateway-session-id": "s-1"},
                        config_version="v9", route_path="fallback/0", experiment="cheap-vs-best", variant="b")
    record = RequestCompleted.from_envelope(env, stage="provider", status=200)
    assert (record.user, record.tags) == ("header-user", {"team": "ml"})  # the header beats the body's user
    assert (record.config_version, record.route_path, record.experiment, record.variant) == (
        "v9", "fallback/0", "cheap-vs-best", "b")
    assert b"s-1" not in encode(record)  # routing headers are never recorded
    fallback = RequestCompleted.from_envelope(make_envelope(), stage="provider", status=200)
    assert fallback.user == "alice"  # from the body


def test_policy_skips_are_recorded(clock: types.SimpleNamespace) -> None:
    skips = {"us/gpt-4o": "region=us, needs eu"}
    record = RequestCompleted.from_envelope(make_envelope(skipped_targets=skips), stage="routing", status=403)
    assert record.skipped_targets == skips
    assert RequestCompleted.from_envelope(make_envelope(), stage="provider", status=200).skipped_targets == {}


VERDICTS = [
    Verdict(guardrail="pii", kind="presidio", phase="input", outcome="redact", score=1.0,
            findings={"EMAIL_ADDRESS": 1}, duration_ms=4.2),
    Verdict(guardrail="injection", kind="prompt_injection", phase="input", outcome="pass", duration_ms=0.3),
    Verdict(guardrail="secrets", kind="secrets", phase="output", outcome="block", score=0.9,
            findings={"aws_access_key": 1}, duration_ms=0.8),
]


def test_verdicts_and_guardrail_profile_are_recorded(clock: types.SimpleNamespace) -> None:
    env = make_envelope(guardrail_profile="strict", verdicts=VERDICTS, redacted=True, tenant="acme")
    record = RequestCompleted.from_envelope(env, stage="output_filter", status=400,
                                            error=ContentBlocked("blocked").info())
    assert record.guardrail_profile == "strict"
    assert record.verdicts == VERDICTS  # all of them, passes included, in the order they ran
    # what goes on the wire to the sink keeps them whole
    assert decode(encode(record), RequestCompleted).verdicts == VERDICTS


def test_no_guardrails_no_verdicts(clock: types.SimpleNamespace) -> None:
    record = RequestCompleted.from_envelope(make_envelope(), stage="provider", status=200)
    assert (record.guardrail_profile, record.verdicts) == ("", [])


def test_tenant_and_key_from_the_caller_when_the_envelope_has_none(clock: types.SimpleNamespace) -> None:
    record = RequestCompleted.from_envelope(make_envelope(), stage="ingress", status=504, tenant="acme",
                                            api_key_id="demo")
    assert (record.stage, record.tenant, record.api_key_id) == ("ingress", "acme", "demo")
    named = make_envelope(tenant="globex", api_key_id="k2")  # the policy stage's word wins
    record = RequestCompleted.from_envelope(named, stage="ingress", status=504, tenant="acme", api_key_id="demo")
    assert (record.tenant, record.api_key_id) == ("globex", "k2")


# -- event kinds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["redaction", "policy", "routing", "provider", "output_filter"])
@pytest.mark.parametrize("how", ["failed", "crashed", "abandoned"])
def test_every_stage_has_its_ending_events(stage: str, how: Any) -> None:
    assert EventType.ended(stage, how).value == f"{stage}.{how}"


def test_an_unknown_event_kind_is_refused_on_the_wire() -> None:
    event = StageEvent(event_id="e", request_id="r", ts=1.0, stage="policy", type=EventType.REQUEST_AUTHORIZED)
    data = encode(event)
    assert b'"type":"request.authorized"' in data and b'"event":"stage"' in data
    assert decode(data, StageEvent) == event
    with pytest.raises(Exception, match="type"):
        decode(data.replace(b"request.authorized", b"request.teleported"), StageEvent)
