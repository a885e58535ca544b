"""Policy: model and input-size authorization of a key (authentication: ``tests/unit/schemas/test_key_auth.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import hash_api_key
from schemas.errors import PermissionDenied
from schemas.governance import KeySecret, VirtualKey
from stages.policy import authorize, input_chars


def make_key(raw: str = "sk-test", *, key_id: str = "k1", models: list[str] | None = None,
             max_input_chars: int = 100) -> VirtualKey:
    return VirtualKey(id=key_id, secrets=[KeySecret(sha256=hash_api_key(raw), created_at=0.0)], tenant="acme",
                      models=models if models is not None else ["*"], max_input_chars=max_input_chars)


def body(*messages: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages)}


# -- authorize --------------------------------------------------------------------------------------


def test_authorize_model_not_allowed() -> None:
    key = make_key(models=["gpt-4o-mini", "claude-3-5-haiku"])
    with pytest.raises(PermissionDenied) as raised:
        authorize(key, "gemini-2.0-flash", body({"role": "user", "content": "hi"}))
    err = raised.value
    assert (err.status_code, err.code, err.param) == (403, "model_not_allowed", "model")
    assert "gemini-2.0-flash" in err.message and "gpt-4o-mini" in err.message


def test_authorize_listed_model_allowed() -> None:
    key = make_key(models=["gpt-4o-mini"])
    assert authorize(key, "gpt-4o-mini", body({"role": "user", "content": "hello"})) == 5


@pytest.mark.parametrize("model", ["gpt-4o-mini", "anything-at-all", "x"])
def test_authorize_wildcard_allows_any_model(model: str) -> None:
    assert authorize(make_key(models=["*"]), model, body({"role": "user", "content": "abc"})) == 3


def test_authorize_wildcard_among_names() -> None:
    assert make_key(models=["gpt-4o-mini", "*"]).allows("other")


def test_authorize_empty_model_list_allows_nothing() -> None:
    with pytest.raises(PermissionDenied):
        authorize(make_key(models=[]), "gpt-4o-mini", body())


def test_authorize_input_at_limit_passes_and_over_limit_refused() -> None:
    key = make_key(max_input_chars=10)
    assert authorize(key, "m", body({"role": "user", "content": "x" * 10})) == 10
    with pytest.raises(PermissionDenied) as raised:
        authorize(key, "m", body({"role": "user", "content": "x" * 11}))
    err = raised.value
    assert (err.status_code, err.code, err.param) == (403, "input_too_large", "messages")
    assert "11" in err.message and "10" in err.message


def test_authorize_counts_across_messages() -> None:
    key = make_key(max_input_chars=10)
    with pytest.raises(PermissionDenied) as raised:
        authorize(key, "m", body({"role": "system", "content": "x" * 6}, {"role": "user", "content": "y" * 6}))
    assert raised.value.code == "input_too_large"


def test_authorize_model_checked_before_size() -> None:
    key = make_key(models=["a"], max_input_chars=1)
    with pytest.raises(PermissionDenied) as raised:
        authorize(key, "b", body({"role": "user", "content": "too long"}))
    assert raised.value.code == "model_not_allowed"


# -- input_chars ------------------------------------------------------------------------------------


def test_input_chars_string_content() -> None:
    assert input_chars(body({"role": "system", "content": "abc"}, {"role": "user", "content": "de"})) == 5


def test_input_chars_list_content_counts_text_parts_only() -> None:
    content = [
        {"type": "text", "text": "hello"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "world!"},
    ]
    assert input_chars(body({"role": "user", "content": content})) == 11


def test_input_chars_mixed_and_odd_messages() -> None:
    data = body(
        {"role": "user", "content": "abcd"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": "xy"}]},
        "not a message",
    )
    assert input_chars(data) == 6


@pytest.mark.parametrize("data", [{}, {"messages": None}, {"messages": []}])
def test_input_chars_no_messages(data: dict[str, Any]) -> None:
    assert input_chars(data) == 0
