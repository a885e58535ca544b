"""The offline token estimate."""

from __future__ import annotations

from ingress.anthropic_surface import count_tokens


def test_count_tokens_text() -> None:
    assert count_tokens({"messages": [{"role": "user", "content": "x" * 40}]}) == {"input_tokens": 10}
    assert count_tokens({"messages": []}) == {"input_tokens": 0}


def test_count_tokens_everything_counts() -> None:
    base = {"messages": [{"role": "user", "content": "hello there"}]}
    small = count_tokens(base)["input_tokens"]
    tool = {"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object"}}
    assert count_tokens({**base, "system": "You are terse." * 10})["input_tokens"] > small
    assert count_tokens({**base, "tools": [tool]})["input_tokens"] > small
    blocks = [
        {"type": "text", "text": "a" * 8},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 10_000}},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"k": "v" * 20}},
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "b" * 12}]},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "c" * 4}},
    ]
    estimate = count_tokens(
        {"system": [{"type": "text", "text": "s" * 4}], "messages": [{"role": "user", "content": blocks}]}
    )
    assert 1600 < estimate["input_tokens"] < 1700  # the image is a flat estimate, not its base64 length
