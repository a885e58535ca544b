"""The redaction stage's step on one envelope: the profile's operators on the body, and the ``pii``
verdict it leaves (pass, redact, block; none when redaction is off)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from schemas.config import Guardrails, OutputFilter, Redaction
from schemas.envelope import Envelope
from schemas.wire import convert
from stages.envelope_redaction import ProfileRedactor, redact_envelope
from stages.pii import PiiScanner
from tests.support.messages import to_dict

SALT = b"s" * 32
TEXT = "pay with 4111 1111 1111 1111, mail ops@example.com"


def profile(**redaction: Any) -> Guardrails:
    return Guardrails(profile="p", redaction=Redaction(**redaction), output_filter=OutputFilter(), guardrails=[])


def envelope(content: str, *, endpoint: str = "chat.completions") -> Envelope:
    body: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": content}]}
    if endpoint == "embeddings":
        body = {"model": "chat", "input": content}
    now = time.time()
    return convert({"request_id": "r1", "received_at": now, "deadline": now + 60,
                                    "reply_to": "_INBOX.x", "body": body, "model_requested": "chat",
                                    "endpoint": endpoint}, Envelope)


@pytest.fixture
def redactor(scanner: PiiScanner) -> ProfileRedactor:
    return ProfileRedactor(scanner, SALT)


def test_placeholders_and_a_redact_verdict(redactor: ProfileRedactor) -> None:
    env = envelope(TEXT)
    outcome = redact_envelope(env, profile(), redactor, "acme")
    assert outcome.blocked is None and outcome.result is not None
    assert outcome.result.body["messages"][0]["content"] == "pay with <CREDIT_CARD_1>, mail <EMAIL_ADDRESS_1>"
    assert outcome.result.mapping == {"<CREDIT_CARD_1>": "4111 1111 1111 1111", "<EMAIL_ADDRESS_1>": "ops@example.com"}
    assert outcome.verdict is not None
    assert {k: v for k, v in to_dict(outcome.verdict).items() if k not in {"duration_ms", "score"}} == {
        "guardrail": "pii", "kind": "pii_redaction", "phase": "input", "outcome": "redact",
        "findings": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}}
    assert 0 < outcome.verdict.score <= 1 and outcome.verdict.duration_ms >= 0
    assert env.body["messages"][0]["content"] == TEXT  # the envelope is untouched


def test_a_block_operator_ends_with_a_block_verdict(redactor: ProfileRedactor) -> None:
    outcome = redact_envelope(envelope(TEXT), profile(operators={"CREDIT_CARD": "block"}), redactor, "acme")
    assert outcome.result is None and outcome.blocked is not None
    assert outcome.blocked.info().code == "pii_blocked" and outcome.blocked.param == "messages"
    assert outcome.verdict is not None and outcome.verdict.outcome == "block"
    assert outcome.verdict.findings == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    assert outcome.verdict.score == outcome.blocked.score


def test_pass_verdict_and_redaction_off(redactor: ProfileRedactor) -> None:
    clean = redact_envelope(envelope("Summarize the history of printing."), profile(), redactor, "globex")
    assert clean.verdict is not None and clean.verdict.outcome == "pass"
    assert clean.verdict.score == 0 and clean.verdict.findings == {}
    assert clean.result is not None and clean.result.mapping == {}
    off = redact_envelope(envelope("mail ops@example.com"), profile(enabled=False), ProfileRedactor(None, SALT), "")
    assert off.result is None and off.blocked is None and off.verdict is None


def test_hashes_follow_the_tenant(redactor: ProfileRedactor) -> None:
    hashed = profile(operator="hash")
    env = envelope("mail jane@example.com")
    acme = redact_envelope(env, hashed, redactor, "acme")
    globex = redact_envelope(env, hashed, redactor, "globex")
    again = redact_envelope(env, hashed, redactor, "globex")
    salted = redact_envelope(env, hashed, ProfileRedactor(redactor.scanner, b"t" * 32), "globex")
    assert acme.result is not None and globex.result is not None and again.result is not None
    assert salted.result is not None
    assert globex.result.body["messages"][0]["content"].startswith("mail <EMAIL_ADDRESS:")
    assert acme.result.body != globex.result.body and again.result.body == globex.result.body
    assert salted.result.body != globex.result.body  # the redactor's salt keys the hash too


def test_embeddings_input_is_redacted_with_nothing_to_restore(redactor: ProfileRedactor) -> None:
    outcome = redact_envelope(envelope("mail ops@example.com", endpoint="embeddings"), profile(), redactor, "")
    assert outcome.result is not None and outcome.result.body["input"] == "mail <EMAIL_ADDRESS_1>"
    assert outcome.result.mapping == {}
    assert outcome.verdict is not None and outcome.verdict.outcome == "redact"


def test_embeddings_block_names_input(redactor: ProfileRedactor) -> None:
    outcome = redact_envelope(envelope("4111 1111 1111 1111", endpoint="embeddings"),
                              profile(operators={"CREDIT_CARD": "block"}), redactor, "acme")
    assert outcome.blocked is not None and outcome.blocked.param == "input"


def test_only_a_ner_scanner_runs_off_the_loop(scanner: PiiScanner) -> None:
    assert ProfileRedactor(scanner, SALT, "ner").offload
    assert not ProfileRedactor(scanner, SALT).offload
    assert not ProfileRedactor(None, SALT, "ner").offload  # redaction off: nothing to run
