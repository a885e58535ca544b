"""The redaction worker's setup: profile resolution, one redactor per distinct profile, salts, tenants
(``redact_envelope`` itself: ``tests/unit/stages/test_envelope_redaction.py``); taking a sealed request
from GW_REQ, and refusing one that does not open. The NATS wiring is covered by the integration tests
(``tests/integration/test_at_rest.py``)."""

from __future__ import annotations

import time
import types
from typing import Any

import pytest

from schemas import subjects
from schemas.config import GatewayConfig, hash_api_key
from schemas.envelope import Envelope, Reply
from schemas.events import RequestCompleted
from schemas.sealed_request import MSG_ID, seal_request
from schemas.sealing import new_key
from schemas.wire import convert, decode
from stages.envelope_redaction import redact_envelope
from tests.support.fake_nats import FakeMsg, FakeNats, context, settled
from tests.support.messages import to_dict
from workers.redaction import RedactionWorker, build_redactors, default_salt, resolve_salt, scanner_inputs
from workers.runtime import StageRuntime

SALT = default_salt(b"k" * 32)
STRICT_KEY = hash_api_key("sk-strict")
PLAIN_KEY = hash_api_key("sk-plain")


def _config(**overrides: Any) -> GatewayConfig:
    data: dict[str, Any] = {
        "keys": [
            {"id": "strict", "key_sha256": STRICT_KEY, "tenant": "acme", "guardrail_profile": "strict"},
            {"id": "plain", "key_sha256": PLAIN_KEY, "tenant": "globex"},
        ],
        "providers": {"p": {"type": "openai", "base_url": "http://127.0.0.1:9"}},
        "models": {
            "chat": {"targets": [{"provider": "p", "model": "m"}]},
            "hashed": {"targets": [{"provider": "p", "model": "m"}], "guardrail_profile": "hashed"},
            "flagged": {"targets": [{"provider": "p", "model": "m"}], "guardrail_profile": "same_as_default"},
            "raw": {"targets": [{"provider": "p", "model": "m"}], "guardrail_profile": "off"},
        },
        "guardrail_profiles": {
            "strict": {"redaction": {"operators": {"CREDIT_CARD": "block"}}},
            "hashed": {"redaction": {"operator": "hash", "allow_list": ["ops@example.com"]}},
            "same_as_default": {"output_filter": {"pii_action": "flag"}},
            "off": {"redaction": {"enabled": False}},
        },
    }
    data.update(overrides)
    return GatewayConfig.model_validate(data)


def _envelope(content: str, *, key: str | None = PLAIN_KEY, model: str = "chat",
              endpoint: str = "chat.completions") -> Envelope:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if endpoint == "embeddings":
        body = {"model": model, "input": content}
    now = time.time()
    return convert({
        "request_id": "r1", "received_at": now, "deadline": now + 60, "reply_to": "_INBOX.x",
        "api_key_hash": key, "body": body, "model_requested": model, "endpoint": endpoint}, Envelope)


@pytest.fixture(scope="module")
def config() -> GatewayConfig:
    return _config()


@pytest.fixture(scope="module")
def redactors(config: GatewayConfig) -> Any:
    return build_redactors(config, SALT)


def test_one_redactor_per_distinct_profile(redactors: Any) -> None:
    assert set(redactors) == {"default", "strict", "hashed", "same_as_default", "off"}
    # operators are applied per request from the profile: they need no scanner of their own
    assert redactors["same_as_default"] is redactors["default"] is redactors["strict"]
    assert redactors["hashed"] is not redactors["default"]  # its allow list differs
    assert redactors["off"].scanner is None
    # scanners built from the same (engine, custom) share one presidio analyzer
    assert redactors["hashed"].scanner._analyzer is redactors["default"].scanner._analyzer
    assert not any(r.offload for r in redactors.values())


def test_scanner_inputs_change_only_with_redaction_settings(config: GatewayConfig) -> None:
    same = _config(limits={"max_body_bytes": 2048})
    changed = _config(redaction={"allow_list": ["x@example.com"]})
    assert scanner_inputs(same) == scanner_inputs(config)
    assert scanner_inputs(changed) != scanner_inputs(config)


def test_profile_from_key_then_model_then_default(config: GatewayConfig, redactors: Any) -> None:
    text = "pay with 4111 1111 1111 1111, mail ops@example.com"
    by_key = config.guardrails_for(STRICT_KEY, "hashed")
    blocked = redact_envelope(_envelope(text, key=STRICT_KEY, model="hashed"), by_key,
                              redactors[by_key.profile], "acme")
    assert by_key.profile == "strict" and blocked.result is None and blocked.blocked is not None
    assert blocked.verdict is not None and blocked.verdict.outcome == "block"
    assert blocked.verdict.findings == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    assert blocked.blocked.info().code == "pii_blocked"

    by_model = config.guardrails_for(PLAIN_KEY, "hashed")
    hashed = redact_envelope(_envelope(text, model="hashed"), by_model, redactors[by_model.profile],
                             "globex")
    assert by_model.profile == "hashed" and hashed.result is not None
    content = hashed.result.body["messages"][0]["content"]
    assert content.startswith("pay with <CREDIT_CARD:") and content.endswith("mail ops@example.com")
    assert hashed.result.mapping == {}

    default = config.guardrails_for(None, "chat")
    plain = redact_envelope(_envelope(text, key=None), default, redactors["default"], "")
    assert default.profile == "default" and plain.result is not None
    assert plain.result.body["messages"][0]["content"] == "pay with <CREDIT_CARD_1>, mail <EMAIL_ADDRESS_1>"
    assert plain.verdict is not None
    assert {k: v for k, v in to_dict(plain.verdict).items() if k not in {"duration_ms", "score"}} == {
        "guardrail": "pii", "kind": "pii_redaction", "phase": "input", "outcome": "redact",
        "findings": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}}
    assert 0 < plain.verdict.score <= 1 and plain.verdict.duration_ms >= 0


def test_salt_from_env_or_sealing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_SALT_TEST", "pepper")
    assert resolve_salt("env:PII_SALT_TEST", SALT) == b"pepper"
    assert resolve_salt(None, SALT) == SALT
    assert default_salt(b"k" * 32) == SALT and default_salt(b"j" * 32) != SALT
    monkeypatch.delenv("PII_SALT_TEST")
    with pytest.raises(ValueError, match="PII_SALT_TEST"):
        resolve_salt("env:PII_SALT_TEST", SALT)


def test_missing_salt_variable_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PII_SALT_MISSING", raising=False)
    with pytest.raises(ValueError, match="PII_SALT_MISSING"):
        build_redactors(_config(redaction={"operator": "hash", "hash_salt": "env:PII_SALT_MISSING"}), SALT)


def test_a_profile_nobody_names_is_not_built() -> None:
    config = _config(keys=[], models={}, guardrail_profiles={"people": {"redaction": {"engine": "ner"}}})
    assert set(build_redactors(config, SALT)) == {"default"}  # no NER engine loaded for it


def test_ner_profile_runs_off_the_loop() -> None:
    people_chat = {"targets": [{"provider": "p", "model": "m"}], "guardrail_profile": "people"}
    config = _config(keys=[], models={"people-chat": people_chat},
                     guardrail_profiles={"people": {"redaction": {"engine": "ner"}}})
    redactors = build_redactors(config, SALT)
    people = redactors["people"]
    assert people.offload and not redactors["default"].offload
    outcome = redact_envelope(_envelope("Please email Sarah Connor in Lisbon"), config.profile("people"), people, "")
    assert outcome.result is not None
    assert outcome.result.body["messages"][0]["content"] == "Please email <PERSON_1> in <LOCATION_1>"


# -- taking a sealed request from GW_REQ ------------------------------------------------------------

RID = "0190f0c4-0000-7000-8000-00000000abcd"
ACK_SUBJECT = "$JS.ACK.GW_REQ.redaction.1.5.5.0.0"


def taker(nc: FakeNats, key: bytes) -> tuple[Any, StageRuntime, list[Envelope]]:
    """``RedactionWorker.take`` over a fake worker: the real opening, the real runtime; ``work`` recorded."""
    ctx = context(nc)
    runtime = StageRuntime(ctx, "redaction")
    worked: list[Envelope] = []

    async def work(envelope: Envelope, started: float) -> None:
        worked.append(envelope)

    async def done() -> None:
        return None

    worker = types.SimpleNamespace(key=key, runtime=runtime, work=work, intake=types.SimpleNamespace(done=done),
                                   ctx=types.SimpleNamespace(load=types.SimpleNamespace(waited=lambda s: None)),
                                   interactive=True)
    return worker, runtime, worked


def sealed_message(key: bytes, **headers: str) -> FakeMsg:
    envelope = Envelope(request_id=RID, received_at=time.time(), deadline=time.time() + 60,
                        reply_to=f"gw.reply.ing.{RID}", body={"messages": [{"role": "user", "content": "jane@x.io"}]},
                        model_requested="m")
    data, clear = seal_request(envelope, key)
    return FakeMsg(subjects.REQ_REDACT, data, ACK_SUBJECT, {**clear, **headers})


async def test_a_sealed_request_is_opened_and_worked_on() -> None:
    key = new_key()
    worker, runtime, worked = taker(FakeNats(), key)
    RedactionWorker.take(worker, sealed_message(key))  # type: ignore[arg-type]
    await runtime.drain(1.0)
    assert [(e.request_id, e.body, e.ack_subject) for e in worked] == [
        (RID, {"messages": [{"role": "user", "content": "jane@x.io"}]}, ACK_SUBJECT)]


@pytest.mark.parametrize("case", ["other key", "replayed id", "unsealed"])
async def test_an_unreadable_request_is_answered_recorded_and_acked(case: str) -> None:
    key = new_key()
    nc = FakeNats()
    worker, runtime, worked = taker(nc, key)
    msg = sealed_message(new_key() if case == "other key" else key)
    if case == "replayed id":
        msg = FakeMsg(msg.subject, msg.data, msg.reply, {**(msg.headers or {}), MSG_ID: RID[:-4] + "ffff"})
        rid = RID[:-4] + "ffff"
    else:
        rid = RID
    if case == "unsealed":
        msg = FakeMsg(msg.subject, b'{"request_id": "' + RID.encode() + b'"}', msg.reply, msg.headers)
    RedactionWorker.take(worker, msg)  # type: ignore[arg-type]
    await settled(runtime.ctx, runtime)
    assert worked == []  # never run
    (answer,) = [decode(d, Reply) for d in nc.on(f"gw.reply.ing.{RID}")]
    assert answer.error is not None and (answer.status, answer.error.code) == (500, "request_unreadable")
    (record,) = [decode(d, RequestCompleted) for d in nc.on(subjects.event_subject("redaction"))]
    assert (record.request_id, record.error_code, record.request_body) == (rid, "request_unreadable", "")
    assert nc.sent[-1].subject == ACK_SUBJECT  # acked: never redelivered
