"""Request validation: every malformed body becomes a 400 with a precise code and param."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingress.validation import MAX_JSON_DEPTH, parse_chat_request, within_depth
from schemas.errors import InvalidRequest

USER = {"role": "user", "content": "hi"}


def refused(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat_request(raw)
    assert raised.value.status_code == 400
    assert raised.value.to_body()["error"]["type"] == "invalid_request_error"
    return raised.value


def refused_json(data: Any) -> InvalidRequest:
    return refused(orjson.dumps(data))


@pytest.mark.parametrize("raw", [b"", b"{", b"{'model': 'm'}", b"nul", b"\xff\xfe", b'{"model": "m",}'])
def test_empty_or_bad_json(raw: bytes) -> None:
    err = refused(raw)
    assert (err.code, err.param) == ("invalid_json", None)


@pytest.mark.parametrize("data", [[], [{"model": "m"}], "text", 42, None, True])
def test_not_an_object(data: Any) -> None:
    err = refused_json(data)
    assert err.code == "invalid_json"
    assert "JSON object" in err.message


@pytest.mark.parametrize(("data", "param"), [
    ({"messages": [USER]}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": [{"content": "no role"}]}, "messages.0.role"),
])
def test_missing_required(data: dict[str, Any], param: str) -> None:
    err = refused_json(data)
    assert (err.code, err.param) == ("missing_required_parameter", param)
    assert f"'{param}'" in err.message


def test_missing_both_counts_the_rest() -> None:
    err = refused_json({})
    assert err.code == "missing_required_parameter"
    assert "1 more problem in the request" in err.message


def test_empty_messages() -> None:
    err = refused_json({"model": "m", "messages": []})
    assert (err.code, err.param) == ("empty_array", "messages")


def test_wrong_role() -> None:
    err = refused_json({"model": "m", "messages": [USER, {"role": "bot", "content": "x"}]})
    assert (err.code, err.param) == ("invalid_value", "messages.1.role")


@pytest.mark.parametrize(("data", "param"), [
    ({"model": 5, "messages": [USER]}, "model"),
    ({"model": "m", "messages": "hi"}, "messages"),
    ({"model": "m", "messages": ["hi"]}, "messages.0"),
    ({"model": "m", "messages": [USER], "max_tokens": [1]}, "max_tokens"),
    ({"model": "m", "messages": [USER], "stream": [True]}, "stream"),
    ({"model": "m", "messages": [USER], "user": 7}, "user"),
    pytest.param({"model": "m", "messages": [USER], "max_tokens": "many"}, "max_tokens"),
    pytest.param({"model": "m", "messages": [USER], "temperature": "hot"}, "temperature"),
])
def test_wrong_types(data: dict[str, Any], param: str) -> None:
    err = refused_json(data)
    assert (err.code, err.param) == ("invalid_type", param)


@pytest.mark.parametrize(("data", "param"), [
    ({"model": "", "messages": [USER]}, "model"),
    ({"model": "m", "messages": [USER], "temperature": 2.5}, "temperature"),
    ({"model": "m", "messages": [USER], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [USER], "n": 129}, "n"),
    ({"model": "m", "messages": [USER], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
])
def test_invalid_values(data: dict[str, Any], param: str) -> None:
    err = refused_json(data)
    assert (err.code, err.param) == ("invalid_value", param)


def test_wrong_content_type_param_names_the_field() -> None:
    err = refused_json({"model": "m", "messages": [{"role": "user", "content": 123}]})
    assert (err.code, err.param) == ("invalid_type", "messages.0.content")


def test_valid_request_returns_body_and_view() -> None:
    data, request = parse_chat_request(orjson.dumps({"model": "gpt-4o-mini", "messages": [USER], "stream": True}))
    assert data == {"model": "gpt-4o-mini", "messages": [USER], "stream": True}
    assert request.model == "gpt-4o-mini" and request.stream is True
    assert request.messages[0].role == "user"


def test_unknown_fields_are_kept() -> None:
    sent = {
        "model": "m",
        "messages": [{"role": "tool", "content": "42", "tool_call_id": "call_1"}],
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "seed": 7,
        "vendor_extension": {"nested": [1, None, "x"]},
    }
    data, request = parse_chat_request(orjson.dumps(sent))
    assert data == sent
    assert request.model_extra is not None and request.model_extra["vendor_extension"] == {"nested": [1, None, "x"]}
    assert request.messages[0].model_extra == {"tool_call_id": "call_1"}


def test_list_content_accepted() -> None:
    content = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    data, request = parse_chat_request(orjson.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}))
    assert data["messages"][0]["content"] == content
    assert isinstance(request.messages[0].content, list)


def _nested(depth: int) -> bytes:
    """A chat body whose extra field makes the whole body ``depth`` levels deep."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "extra": ' + inner + b"}"


def test_nesting_up_to_the_limit_is_accepted_and_one_more_is_refused() -> None:
    body, _ = parse_chat_request(_nested(MAX_JSON_DEPTH))
    assert "extra" in body
    with pytest.raises(InvalidRequest) as err:
        parse_chat_request(_nested(MAX_JSON_DEPTH + 1))
    assert err.value.code == "json_too_deep" and err.value.status_code == 400


def test_nesting_past_the_parser_limit_is_invalid_json_not_a_crash() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_chat_request(b"[" * 100_000)
    assert err.value.code == "invalid_json"


def test_within_depth_counts_objects_and_arrays() -> None:
    assert within_depth({"a": [{"b": 1}]}, 3)
    assert not within_depth({"a": [{"b": []}]}, 3)
    assert within_depth("scalar", 1)
