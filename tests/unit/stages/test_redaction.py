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


# -- operators --------------------------------------------------------------------------------------

SALT = b"s" * 32


def test_mask_keeps_the_format_and_the_last_characters() -> None:
    from stages.redaction import mask_value

    assert mask_value("4111 1111 1111 1111", "*", 4) == "**** **** **** 1111"
    assert mask_value("123-45-6788", "#", 4) == "###-##-6788"
    assert mask_value("jane@example.com", "*", 4) == "****@******e.com"
    assert mask_value("4111 1111 1111 1111", "*", 0) == "**** **** **** ****"
    # never shown whole: at most half of the letters and digits stay
    assert mask_value("1640", "*", 4) == "**40" and mask_value("Bob", "x", 4) == "xxb"


def test_mask_operator(scanner: PiiScanner) -> None:
    body = _body({"role": "user", "content": "card 4111 1111 1111 1111, ssn 123-45-6788"})
    result = redact_request(body, scanner, Redaction(operator="mask"))
    assert result.body["messages"][0]["content"] == "card **** **** **** 1111, ssn ***-**-6788"
    assert result.mapping == {} and result.counts == {"CREDIT_CARD": 1, "US_SSN": 1}
    assert result.score > 0


def test_hash_operator_is_stable_per_tenant_and_differs_across_tenants(scanner: PiiScanner) -> None:
    from stages.redaction import HASH_TOKEN

    body = _body({"role": "user", "content": "mail jane@example.com"}, {"role": "user", "content": "jane@example.com"})
    config = Redaction(operator="hash")
    a1 = redact_request(body, scanner, config, tenant="acme", salt=SALT)
    a2 = redact_request(body, scanner, config, tenant="acme", salt=SALT)
    b = redact_request(body, scanner, config, tenant="globex", salt=SALT)
    other_salt = redact_request(body, scanner, config, tenant="acme", salt=b"t" * 32)
    token = a1.body["messages"][1]["content"]
    assert HASH_TOKEN.fullmatch(token) and token.startswith("<EMAIL_ADDRESS:")
    assert a1.body["messages"][0]["content"] == f"mail {token}"
    assert a2.body == a1.body
    assert b.body["messages"][1]["content"] != token and other_salt.body["messages"][1]["content"] != token
    assert a1.mapping == {} and a1.counts == {"EMAIL_ADDRESS": 2}
    assert not PLACEHOLDER.search(token)  # the output filter never restores a hash


def test_hash_needs_a_salt(scanner: PiiScanner) -> None:
    import pytest

    with pytest.raises(ValueError, match="salt"):
        redact_request(_body({"role": "user", "content": "jane@example.com"}), scanner, Redaction(operator="hash"))


def test_per_entity_operators_override_the_default(scanner: PiiScanner) -> None:
    config = Redaction(operator="placeholder", operators={"CREDIT_CARD": "mask", "US_SSN": "hash"})
    body = _body({"role": "user", "content": "jane@example.com pays 4111 1111 1111 1111, ssn 123-45-6788"})
    result = redact_request(body, scanner, config, tenant="t", salt=SALT)
    text = result.body["messages"][0]["content"]
    assert text.startswith("<EMAIL_ADDRESS_1> pays **** **** **** 1111, ssn <US_SSN:")
    assert result.mapping == {"<EMAIL_ADDRESS_1>": "jane@example.com"}  # only placeholders are restored
    assert result.counts == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1, "US_SSN": 1}


def test_block_operator_raises_without_values(scanner: PiiScanner) -> None:
    import pytest

    from stages.redaction import PiiBlocked

    config = Redaction(operators={"CREDIT_CARD": "block", "US_SSN": "block"})
    body = _body({"role": "user", "content": "mail jane@example.com, card 4111 1111 1111 1111"},
                 {"role": "user", "content": "ssn 123-45-6788 and card 4111 1111 1111 1111"})
    with pytest.raises(PiiBlocked) as caught:
        redact_request(body, scanner, config)
    error = caught.value
    info = error.info()
    assert (info.status_code, info.type, info.code, info.param) == (400, "invalid_request_error", "pii_blocked",
                                                                    "messages")
    assert "CREDIT_CARD" in info.message and "US_SSN" in info.message and "EMAIL" not in info.message
    assert "4111" not in info.message and "6788" not in info.message and "jane" not in info.message
    assert error.counts == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 2, "US_SSN": 1} and error.score > 0
    assert error.to_body()["error"]["code"] == "pii_blocked"


def test_block_only_when_a_blocked_type_is_present(scanner: PiiScanner) -> None:
    config = Redaction(operators={"CREDIT_CARD": "block"})
    result = redact_request(_body({"role": "user", "content": "mail jane@example.com"}), scanner, config)
    assert result.counts == {"EMAIL_ADDRESS": 1}


def test_embeddings_get_the_same_operators_and_no_map(scanner: PiiScanner) -> None:
    import pytest

    from stages.redaction import PiiBlocked, redact_embedding_input

    body = {"model": "e", "input": ["card 4111 1111 1111 1111", "jane@example.com"]}
    masked = redact_embedding_input(body, scanner, Redaction(operators={"CREDIT_CARD": "mask"}), salt=SALT)
    assert masked.body["input"] == ["card **** **** **** 1111", "<EMAIL_ADDRESS_1>"] and masked.mapping == {}
    with pytest.raises(PiiBlocked) as caught:
        redact_embedding_input(body, scanner, Redaction(operator="block"))
    assert caught.value.param == "input"


def test_allowed_values_stay(analyzer: Any) -> None:
    allowing = PiiScanner(analyzer, ["EMAIL_ADDRESS"], 0.4, allow_list=["support@example.com"])
    body = _body({"role": "user", "content": "support@example.com or jane@example.com"})
    result = redact_request(body, allowing, CONFIG)
    assert result.body["messages"][0]["content"] == "support@example.com or <EMAIL_ADDRESS_1>"
