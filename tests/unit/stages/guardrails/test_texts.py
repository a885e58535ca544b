"""Which texts of a request input guardrails see, and as whose."""

from __future__ import annotations

from stages.guardrails.texts import default_roles, request_texts


def test_roles_and_parts() -> None:
    body = {"messages": [
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": "dev"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "result"},
        {"role": "function", "name": "f", "content": "legacy"},
        {"role": "user", "content": [{"type": "tool_result", "content": [{"type": "text", "text": "nested"}]},
                                     {"type": "tool_result", "content": "flat"}]},
        "not a message",
        {"role": "weird", "content": "ignored"},
    ]}
    everything = ["user", "system", "assistant", "tool"]
    assert list(request_texts(body, everything)) == [
        ("system", "sys"), ("system", "dev"), ("user", "hello"), ("tool", "result"), ("tool", "legacy"),
        ("tool", "nested"), ("tool", "flat")]
    assert [t for _, t in request_texts(body, default_roles())] == ["hello", "result", "legacy", "nested", "flat"]
    assert [t for _, t in request_texts(body, ["user"])] == ["hello"]


def test_embedding_input_is_user_text() -> None:
    assert list(request_texts({"input": ["a", 3, "b"]}, ["user"])) == [("user", "a"), ("user", "b")]
    assert list(request_texts({"input": "one"}, ["user"])) == [("user", "one")]
    assert list(request_texts({"input": "one"}, ["tool"])) == []
