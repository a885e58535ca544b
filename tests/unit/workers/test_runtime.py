"""The pure parts of the stage runtime: the completion record, stage timing, the in-progress ticker."""

from __future__ import annotations

import asyncio
import types
import uuid
from typing import Any

import orjson
import pytest

from schemas import subjects
from schemas.envelope import Envelope, Usage
from schemas.errors import ContentBlocked, ProviderTimeout
from schemas.events import RequestCompleted
from schemas.guardrails import Verdict
from workers import runtime
from workers.runtime import IN_PROGRESS, InProgressTicker, StageRuntime, completed_record, with_stage_time

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
    return Envelope.model_validate(values)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Frozen wall clock and perf counter for workers.runtime."""
    fake = types.SimpleNamespace(now=RECEIVED + 1.5, perf=100.0)
    monkeypatch.setattr(runtime, "time", types.SimpleNamespace(time=lambda: fake.now, perf_counter=lambda: fake.perf))
    return fake


# -- completed_record -------------------------------------------------------------------------------


def test_latency_and_overhead_from_envelope_timings(clock: types.SimpleNamespace) -> None:
    env = make_envelope(provider_ms=1200.25, ttfb_ms=300.0)
    record = completed_record(env, "provider", 200, None, {"id": "x"})
    assert record.ts == RECEIVED and record.finished_at == clock.now
    assert record.latency_ms == 1500.0
    assert record.provider_ms == 1200.25
    assert record.gateway_overhead_ms == 299.75
    assert record.ttfb_ms == 300.0


def test_overhead_never_negative(clock: types.SimpleNamespace) -> None:
    record = completed_record(make_envelope(provider_ms=9_000.0), "provider", 200, None, None)
    assert record.gateway_overhead_ms == 0.0


def test_success_record_fields(clock: types.SimpleNamespace) -> None:
    env = make_envelope(
        tenant="acme", api_key_id="demo", provider="mock-openai", model_served="gpt-4o-mini-2024", stream=True,
        usage=Usage(prompt_tokens=12, completion_tokens=34, source="estimated"), cost_usd="0.000012000",
        attempts=2, delivery=3, redactions={"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1},
        output_findings={"IP_ADDRESS": 1}, stage_ms={"policy": 0.2},
    )
    record = completed_record(env, "output_filter", 200, None, {"choices": []})
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
    assert completed_record(env, "policy", 200, None, None).request_body == ""
    redacted = env.model_copy(update={"redacted": True})
    assert orjson.loads(completed_record(redacted, "policy", 200, None, None).request_body) == env.body


def test_error_fields(clock: types.SimpleNamespace) -> None:
    info = ProviderTimeout("the provider did not answer in 30 s").info()
    record = completed_record(make_envelope(), "provider", 504, info, None)
    assert record.status_code == 504
    assert (record.error_type, record.error_code, record.error_message) == (
        "timeout_error", "provider_timeout", "the provider did not answer in 30 s")
    assert record.response_body == ""


def test_defaults_for_a_request_that_stopped_early(clock: types.SimpleNamespace) -> None:
    env = make_envelope(body={"model": "m", "messages": []})
    record = completed_record(env, "redaction", 400, None, None)
    assert (record.tenant, record.api_key_id, record.user, record.provider, record.model_served) == ("",) * 5
    assert (record.prompt_tokens, record.completion_tokens, record.usage_source) == (0, 0, "")
    assert record.cost_usd is None and record.ttfb_ms is None
    assert (record.tags, record.config_version, record.route_path, record.experiment, record.variant) == (
        {}, "", "", "", "")


def test_request_metadata_and_routing_decision_are_recorded(clock: types.SimpleNamespace) -> None:
    env = make_envelope(user="header-user", tags={"team": "ml"}, headers={"x-gateway-session-id": "s-1"},
                        config_version="v9", route_path="fallback/0", experiment="cheap-vs-best", variant="b")
    record = completed_record(env, "provider", 200, None, None)
    assert (record.user, record.tags) == ("header-user", {"team": "ml"})  # the header beats the body's user
    assert (record.config_version, record.route_path, record.experiment, record.variant) == (
        "v9", "fallback/0", "cheap-vs-best", "b")
    assert "s-1" not in record.model_dump_json()  # routing headers are never recorded
    assert completed_record(make_envelope(), "provider", 200, None, None).user == "alice"  # body fallback


VERDICTS = [
    Verdict(guardrail="pii", kind="presidio", phase="input", outcome="redact", score=1.0,
            findings={"EMAIL_ADDRESS": 1}, duration_ms=4.2),
    Verdict(guardrail="injection", kind="prompt_injection", phase="input", outcome="pass", duration_ms=0.3),
    Verdict(guardrail="secrets", kind="secrets", phase="output", outcome="block", score=0.9,
            findings={"aws_access_key": 1}, duration_ms=0.8),
]


def test_verdicts_and_guardrail_profile_are_recorded(clock: types.SimpleNamespace) -> None:
    env = make_envelope(guardrail_profile="strict", verdicts=VERDICTS, redacted=True, tenant="acme")
    record = completed_record(env, "output_filter", 400, ContentBlocked("blocked").info(), None)
    assert record.guardrail_profile == "strict"
    assert record.verdicts == VERDICTS  # all of them, passes included, in the order they ran
    # what goes on the wire to the sink keeps them whole
    assert RequestCompleted.model_validate_json(record.model_dump_json()).verdicts == VERDICTS


def test_no_guardrails_no_verdicts(clock: types.SimpleNamespace) -> None:
    record = completed_record(make_envelope(), "provider", 200, None, None)
    assert (record.guardrail_profile, record.verdicts) == ("", [])


async def test_a_blocked_request_publishes_its_verdicts(clock: types.SimpleNamespace) -> None:
    """The stage that blocks ends the request through ``fail``: the record carries the verdicts."""
    nc = FakeNats()
    stage = StageRuntime(types.SimpleNamespace(connection=nc), "output_filter")  # type: ignore[arg-type]
    env = make_envelope(guardrail_profile="strict", verdicts=VERDICTS, ack_subject="$JS.ACK.x")
    await stage.fail(env, ContentBlocked("The response was blocked by the secrets guardrail."), 100.0,
                     "output_filter.blocked")
    by_subject = dict(nc.published)
    assert set(by_subject) == {env.reply_to, subjects.event_subject("output_filter"), "$JS.ACK.x"}
    record = RequestCompleted.model_validate_json(by_subject[subjects.event_subject("output_filter")])
    assert (record.status_code, record.error_code, record.guardrail_profile) == (400, "content_blocked", "strict")
    assert record.verdicts == VERDICTS


# -- with_stage_time --------------------------------------------------------------------------------


def test_with_stage_time_records_and_accumulates(clock: types.SimpleNamespace) -> None:
    env = make_envelope(stage_ms={"redaction": 2.0})
    clock.perf = 100.0125
    once = with_stage_time(env, "policy", 100.0)
    assert once.stage_ms == {"redaction": 2.0, "policy": 12.5}
    clock.perf = 200.001
    twice = with_stage_time(once, "policy", 200.0, tenant="acme")
    assert twice.stage_ms["policy"] == 13.5
    assert twice.tenant == "acme"
    assert env.stage_ms == {"redaction": 2.0}  # the input envelope is untouched
    assert once.stage_ms["policy"] == 12.5


def test_with_stage_time_real_clock() -> None:
    import time

    env = with_stage_time(make_envelope(), "routing", time.perf_counter())
    assert 0 <= env.stage_ms["routing"] < 1_000


# -- InProgressTicker -------------------------------------------------------------------------------


class FakeNats:
    def __init__(self, fail_first: int = 0) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.fail_first = fail_first
        self.event = asyncio.Event()

    async def publish(self, subject: str, payload: bytes) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("nats: connection closed")
        self.published.append((subject, payload))
        self.event.set()


def never_called() -> Any:
    raise AssertionError("the ticker published although its period cannot have elapsed")


async def test_ticker_counts_adds_and_discards() -> None:
    ticker = InProgressTicker(never_called, ack_wait_s=3_000)
    try:
        ticker.add("ack.a")
        ticker.add("ack.a")
        ticker.add("ack.b")
        assert ticker._subjects == {"ack.a": 2, "ack.b": 1}
        ticker.discard("ack.a")
        assert ticker._subjects == {"ack.a": 1, "ack.b": 1}
        ticker.discard("ack.a")
        ticker.discard("ack.a")  # one discard too many: harmless
        ticker.discard("ack.unknown")
        ticker.discard(None)
        assert ticker._subjects == {"ack.b": 1}
    finally:
        await ticker.stop()


async def test_ticker_ignores_requests_without_ack_subject() -> None:
    ticker = InProgressTicker(never_called, ack_wait_s=3_000)
    ticker.add(None)
    ticker.add("")
    assert ticker._subjects == {}
    assert ticker._task is None  # no loop started for nothing
    await ticker.stop()


async def test_ticker_starts_one_loop_and_stop_cancels_it() -> None:
    ticker = InProgressTicker(never_called, ack_wait_s=3_000)
    ticker.add("ack.a")
    task = ticker._task
    assert task is not None
    ticker.add("ack.b")
    assert ticker._task is task
    await ticker.stop()
    assert ticker._task is None
    await asyncio.sleep(0)
    assert task.cancelled()


async def test_ticker_sends_in_progress_to_live_subjects_only() -> None:
    nc = FakeNats()
    ticker = InProgressTicker(lambda: nc, ack_wait_s=0.03)  # a tick every 10 ms
    try:
        ticker.add("ack.kept")
        ticker.add("ack.done")
        ticker.discard("ack.done")
        await asyncio.wait_for(nc.event.wait(), 1)
    finally:
        await ticker.stop()
    assert nc.published
    assert set(nc.published) == {("ack.kept", IN_PROGRESS)}


async def test_ticker_survives_a_failed_publish() -> None:
    nc = FakeNats(fail_first=1)
    ticker = InProgressTicker(lambda: nc, ack_wait_s=0.03)
    ticker.add("ack.a")
    task = ticker._task
    assert task is not None
    try:
        await asyncio.wait_for(nc.event.wait(), 0.3)
    finally:
        await ticker.stop()
        await asyncio.sleep(0)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it at garbage collection
    assert nc.published == [("ack.a", IN_PROGRESS)]
