from __future__ import annotations

import copy
from typing import Any

from schemas.config import Redaction
from stages.pii import PiiScanner
from stages.redaction import PLACEHOLDER, redact_request

CONFIG = Redaction()


def _body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-x", "temperature": 0.2, "messages": list(messages), "metadata": {"k": "v"}}


def test_values_become_numbered_placeholders(scanner: PiiScanner) -> None:
    body = _body(
        {"role": "system", "content": "Support desk. Escalations: ops@example.com"},
        {"role": "user", "content": "I'm jane@example.com, cc ops@example.com; call +1 212 555 0143."},
        {"role": "assistant", "content": "Noted, jane@example.com."},
    )
    result = redact_request(body, scanner, CONFIG)
    texts = [m["content"] for m in result.body["messages"]]
    assert texts == [
        "Support desk. Escalations: <EMAIL_ADDRESS_1>",
        "I'm <EMAIL_ADDRESS_2>, cc <EMAIL_ADDRESS_1>; call <PHONE_NUMBER_1>.",
        "Noted, <EMAIL_ADDRESS_2>.",
    ]
    assert result.mapping == {
        "<EMAIL_ADDRESS_1>": "ops@example.com",
        "<EMAIL_ADDRESS_2>": "jane@example.com",
        "<PHONE_NUMBER_1>": "+1 212 555 0143",
    }
    assert result.counts == {"EMAIL_ADDRESS": 4, "PHONE_NUMBER": 1}


def test_other_fields_untouched_and_input_not_mutated(scanner: PiiScanner) -> None:
    body = _body(
        {"role": "user", "content": "mail jane@example.com", "name": "jane@example.com"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": {"arguments": "{}"}}]},
    )
    before = copy.deepcopy(body)
    result = redact_request(body, scanner, CONFIG)
    assert body == before
    assert result.body is not body
    out = result.body
    assert {k: v for k, v in out.items() if k != "messages"} == {
        k: v for k, v in body.items() if k != "messages"
    }
    assert out["messages"][0] == {
        "role": "user",
        "content": "mail <EMAIL_ADDRESS_1>",
        "name": "jane@example.com",
    }
    assert out["messages"][1] == body["messages"][1]


def test_list_content_text_parts(scanner: PiiScanner) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a@b.com.png"}}
    body = _body(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "card 4111 1111 1111 1111"},
                image,
                {"type": "text", "text": "and again 4111 1111 1111 1111, ip 10.1.2.3"},
            ],
        }
    )
    before = copy.deepcopy(body)
    result = redact_request(body, scanner, CONFIG)
    parts = result.body["messages"][0]["content"]
    assert parts == [
        {"type": "text", "text": "card <CREDIT_CARD_1>"},
        image,
        {"type": "text", "text": "and again <CREDIT_CARD_1>, ip <IP_ADDRESS_1>"},
    ]
    assert body == before
    assert result.counts == {"CREDIT_CARD": 2, "IP_ADDRESS": 1}


def test_no_pii_leaves_text_alone(scanner: PiiScanner) -> None:
    body = _body({"role": "user", "content": "Summarize the history of printing."})
    result = redact_request(body, scanner, CONFIG)
    assert result.body == body and result.mapping == {} and result.counts == {}


def test_disabled_returns_body_unchanged(scanner: PiiScanner) -> None:
    body = _body({"role": "user", "content": "mail jane@example.com"})
    result = redact_request(body, scanner, Redaction(enabled=False))
    assert result.body is body and result.mapping == {} and result.counts == {}


def test_literal_placeholders_in_the_input_are_not_reused(scanner: PiiScanner) -> None:
    body = _body({"role": "user", "content": "Template <EMAIL_ADDRESS_1> stays; mine is jane@example.com"})
    result = redact_request(body, scanner, CONFIG)
    assert (
        result.body["messages"][0]["content"] == "Template <EMAIL_ADDRESS_1> stays; mine is <EMAIL_ADDRESS_2>"
    )
    assert result.mapping == {"<EMAIL_ADDRESS_2>": "jane@example.com"}


def test_placeholders_match_the_shared_pattern(analyzer: Any) -> None:
    body = _body({"role": "user", "content": "employee EMP-123456 at jane@example.com"})
    custom = PiiScanner(analyzer, ["EMAIL_ADDRESS", "EMPLOYEE_ID"], 0.4)
    result = redact_request(body, custom, CONFIG)
    assert set(result.mapping) == {"<EMPLOYEE_ID_1>", "<EMAIL_ADDRESS_1>"}
    assert all(PLACEHOLDER.fullmatch(p) for p in result.mapping)


def test_malformed_messages_are_passed_through(scanner: PiiScanner) -> None:
    body = {"model": "m", "messages": ["not a dict", {"role": "user", "content": [{"type": "text"}, "x"]}]}
    result = redact_request(body, scanner, CONFIG)
    assert result.body == body and result.mapping == {}


def test_embedding_input_is_redacted(scanner: PiiScanner) -> None:
    from stages.redaction import redact_embedding_input

    body = {"model": "e", "input": ["mail bob@example.com", [1, 2, 3], "bob@example.com again"]}
    result = redact_embedding_input(body, scanner, Redaction())
    assert result.body["input"] == ["mail <EMAIL_ADDRESS_1>", [1, 2, 3], "<EMAIL_ADDRESS_1> again"]
    assert result.counts == {"EMAIL_ADDRESS": 2} and body["input"][0] == "mail bob@example.com"
    single = redact_embedding_input({"input": "call 212-555-0199"}, scanner, Redaction())
    assert single.body["input"] == "call <PHONE_NUMBER_1>"
