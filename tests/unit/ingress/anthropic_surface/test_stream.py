"""Canonical chunks → Anthropic stream events: exact sequence, block order, usage."""

from __future__ import annotations

from typing import Any

import orjson

from ingress.anthropic_surface import MessagesStreamEncoder, encode_events, encode_sse, ping_event
from ingress.anthropic_surface.stream import Event


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def call(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name:
        function["name"] = name
    return {"tool_calls": [{"index": index, **({"id": id, "type": "function"} if id else {}), "function": function}]}


def run(chunks: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> list[Event]:
    encoder = MessagesStreamEncoder("claude-x", "msg_1", input_tokens=7)
    events: list[Event] = []
    for item in chunks:
        events += encoder.feed(item)
    return events + encoder.finish(usage)


def names(events: list[Event]) -> list[str]:
    return [name for name, _ in events]


def test_text_stream_exact_events() -> None:
    events = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}, "stop"),
            chunk(usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}),
        ]
    )
    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 7, "output_tokens": 0},
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 2, "input_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_text_then_tools_in_order() -> None:
    events = run(
        [
            chunk({"content": "Checking."}),
            chunk(call(0, "", id="call_a", name="get")),
            chunk(call(0, '{"city":')),
            chunk(call(0, '"Paris"}')),
            chunk(call(1, "{}", id="call_b", name="other")),
            chunk({}, "tool_calls"),
        ]
    )
    assert names(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [data for name, data in events if name == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "get", "input": {}}
    deltas = [data for name, data in events if name == "content_block_delta"]
    assert [d["index"] for d in deltas] == [0, 1, 1, 2]
    assert deltas[1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city":'}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"output_tokens": 0}


def test_every_block_is_closed_before_the_next_opens() -> None:
    events = run([chunk({"content": "a"}), chunk(call(0, "{}", id="c", name="f")), chunk({"content": "b"})])
    open_blocks: list[int] = []
    for name, data in events:
        if name == "content_block_start":
            assert not open_blocks
            open_blocks.append(data["index"])
        elif name == "content_block_delta":
            assert open_blocks == [data["index"]]
        elif name == "content_block_stop":
            assert open_blocks == [data["index"]]
            open_blocks.clear()
    assert not open_blocks


def test_late_fragment_of_closed_tool_is_dropped() -> None:
    events = run([chunk(call(0, "{", id="a", name="f")), chunk(call(1, "{}", id="b", name="g")), chunk(call(0, "}"))])
    deltas = [data for name, data in events if name == "content_block_delta"]
    assert [(d["index"], d["delta"]["partial_json"]) for d in deltas] == [(0, "{"), (1, "{}")]


def test_missing_tool_id_generated() -> None:
    events = run([chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]})])
    assert events[1][1]["content_block"]["id"].startswith("toolu_")


def test_empty_stream_and_finish_usage_override() -> None:
    events = run([], usage={"prompt_tokens": 3, "completion_tokens": 0})
    assert names(events) == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["usage"] == {"output_tokens": 0, "input_tokens": 3}


def test_finish_reasons() -> None:
    assert run([chunk({"content": "x"}, "length")])[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert run([chunk({"content": "x"}, "content_filter")])[-2][1]["delta"]["stop_reason"] == "refusal"
    assert run([chunk({"content": "x"})])[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_cached_usage_and_usage_on_content_chunk() -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 40}}
    events = run([chunk({"content": "x"}, "stop", usage=usage)])
    assert events[-2][1]["usage"] == {"output_tokens": 4, "input_tokens": 10, "cache_read_input_tokens": 40}


def test_after_finish_nothing_more() -> None:
    encoder = MessagesStreamEncoder("m", "msg_1")
    encoder.feed(chunk({"content": "x"}))
    assert names(encoder.finish()) == ["content_block_stop", "message_delta", "message_stop"]
    assert encoder.finish() == [] and encoder.feed(chunk({"content": "y"})) == []
    assert encoder.start() == []


def test_other_choices_ignored() -> None:
    item = {"choices": [{"index": 1, "delta": {"content": "other"}, "finish_reason": None}]}
    assert names(run([item])) == ["message_start", "message_delta", "message_stop"]


def test_encode_sse() -> None:
    raw = encode_sse("message_stop", {"type": "message_stop"})
    assert raw == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert encode_events([("a", {"x": 1}), ("b", {})]) == b'event: a\ndata: {"x":1}\n\nevent: b\ndata: {}\n\n'
    assert orjson.loads(ping_event().split(b"data: ")[1]) == {"type": "ping"}
