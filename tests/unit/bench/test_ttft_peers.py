"""The TTFT bench's pure half: SSE parsing of a chunked byte stream, per-request figures, statistics, the
table; and that the mock's stream for a cadence directive is read back as exactly the reply."""

from __future__ import annotations

import json
import math

import httpx
import pytest
import yaml

from bench.ttft_peers import (
    CADENCES,
    MODEL,
    REPLIES,
    REPLY,
    Cadence,
    SseParser,
    StreamRecorder,
    StreamResult,
    compare,
    delta_content,
    goal_lines,
    ours_config,
    parse_args,
    percentile,
    render_table,
    stream_body,
    summarize,
)
from infra.bootstrap import parse_config
from infra.doubles.mock_provider.server import MockProvider


def chunk(content: str | None, usage: bool = False) -> bytes:
    delta = {} if content is None else {"content": content}
    obj = {"object": "chat.completion.chunk", "choices": [] if usage else [{"index": 0, "delta": delta}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


STREAM = b"".join([chunk(None), b": keep-alive\n\n", chunk("Hel"), chunk(""), chunk("lo"), chunk(None, usage=True),
                   b"data: [DONE]\n\n"])


def test_sse_parser_gives_the_same_events_however_the_bytes_are_split() -> None:
    whole = SseParser().feed(STREAM)
    assert len(whole) == 6 and whole[-1] == "[DONE]"
    for size in range(1, 40):
        parser, events = SseParser(), []
        for i in range(0, len(STREAM), size):
            events += parser.feed(STREAM[i:i + size])
        assert events + parser.close() == whole


def test_sse_parser_crlf_multiline_data_and_an_unterminated_last_event() -> None:
    parser = SseParser()
    assert parser.feed(b"event: x\r\ndata: a\r\ndata:b\r\n\r\ndata: [DONE]") == ["a\nb"]
    assert parser.close() == ["[DONE]"]
    assert parser.close() == []


def test_delta_content() -> None:
    assert delta_content(chunk("hi")[6:-2].decode()) == "hi"
    assert delta_content(chunk(None)[6:-2].decode()) == ""
    assert delta_content(chunk(None, usage=True)[6:-2].decode()) == ""
    assert delta_content('{"choices": [{"delta": {"content": null}}]}') == ""
    assert delta_content("[DONE]") == delta_content("not json") == delta_content("[1]") == ""


def test_recorder_times_the_first_non_empty_content_and_every_content_chunk() -> None:
    rec = StreamRecorder(started=10.0)
    rec.feed(chunk(None), 10.005)                     # role chunk: not a token
    rec.feed(chunk("Hel")[:20], 10.030)               # half an event: nothing yet
    rec.feed(chunk("Hel")[20:] + chunk(""), 10.050)
    rec.feed(chunk("lo") + chunk(None, usage=True) + b"data: [DONE]\n\n", 10.100)
    result = rec.finish(10.120)
    assert result.ttft_ms == pytest.approx(50.0)
    assert result.chunk_ms == pytest.approx([50.0, 100.0])
    assert result.total_ms == pytest.approx(120.0)
    assert (result.text, result.chunks, result.done, result.error) == ("Hello", 2, True, None)


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)


def result(ttft: float, chunks: int, text: str = REPLY, error: str | None = None) -> StreamResult:
    return StreamResult(ttft_ms=ttft, total_ms=ttft + 10 * chunks, chunk_ms=[ttft + 10 * i for i in range(chunks)],
                        text=text, done=True, error=error)


def test_summarize_counts_errors_and_mismatches_apart_and_leaves_them_out_of_the_figures() -> None:
    results = [result(10, 60), result(12, 60), result(14, 58), result(1, 1, text="changed"),
               result(1, 0, text="", error="HTTP 500: boom")]
    s = summarize(results, REPLY)
    assert (s["requests"], s["ok"], s["errors"], s["mismatches"], s["no_done"]) == (5, 3, 1, 1, 0)
    assert s["ttft_p50_ms"] == 12 and s["ttft_p95_ms"] == pytest.approx(13.8)
    assert s["chunks_median"] == 60 and s["gap_p50_ms"] == pytest.approx(10)
    assert s["last_chunk_p50_ms"] == pytest.approx(600)  # 600, 602, 584
    assert s["error_samples"] == ["HTTP 500: boom"] and s["mismatch_samples"] == ["changed"]
    empty = summarize([result(1, 0, error="ConnectError")], REPLY)
    assert empty["ttft_p50_ms"] is None and empty["chunks_median"] is None


def rows() -> list[dict[str, object]]:
    out = []
    for target, label, ttft, chunks in [("direct", "direct (mock)", 50.0, 60), ("ours", "ours", 70.0, 57),
                                        ("litellm-w1", "LiteLLM", 900.0, 45)]:
        out.append({"target": target, "label": label, "cadence": "80 chars/s",
                    **summarize([result(ttft, chunks)] * 3, REPLY)})
    compare(out)
    return out


def test_compare_against_direct_at_the_same_cadence() -> None:
    r = rows()
    assert r[0]["added_ttft_p50_ms"] == 0 and r[0]["chunks_ratio"] == 1
    assert r[1]["added_ttft_p50_ms"] == pytest.approx(20) and r[1]["chunks_ratio"] == pytest.approx(0.95)
    assert r[2]["added_ttft_p50_ms"] == pytest.approx(850) and r[2]["chunks_ratio"] == pytest.approx(0.75)
    lone = [{"target": "ours", "cadence": "400 chars/s", "ttft_p50_ms": 5.0, "chunks_median": 60.0}]
    compare(lone)  # no direct row: nothing to compare with
    assert lone[0]["added_ttft_p50_ms"] is None and lone[0]["chunks_ratio"] is None


def test_table_and_goal() -> None:
    table = render_table(rows()).splitlines()
    assert len(table) == 5
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert table[2].startswith("| direct (mock) | 80 chars/s | 3 / 3 | 50.0 | 50.0 | – |")
    assert "| +20.0 |" in table[3] and "| 0.95 |" in table[3] and table[3].endswith("| 0 / 0 |")
    assert "| 0.75 |" in table[4]
    (goal,) = goal_lines(rows())
    assert goal.startswith("ours at 80 chars/s: added TTFT p50 +20.0 ms") and goal.endswith(": met")
    slow = rows()
    slow[1]["added_ttft_p50_ms"] = 31.0
    assert goal_lines(slow)[0].endswith("NOT met")


def test_cadences_and_the_replies() -> None:
    assert [c.chars_per_s for c in CADENCES] == [80, 400]
    assert REPLY in REPLIES and len({r[:4] for r in REPLIES}) == len(REPLIES)  # first chunks differ
    for reply in REPLIES:
        assert 200 <= len(reply) <= 280 and reply[0].isupper() and reply.endswith(".")
        assert not any(ch.isdigit() for ch in reply) and "@" not in reply


async def test_the_mocks_stream_for_a_cadence_reads_back_as_exactly_the_reply() -> None:
    body = json.loads(stream_body(Cadence("fast", 4, 1), REPLY))
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    transport = httpx.ASGITransport(app=MockProvider())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    rec = StreamRecorder(0.0)
    for i in range(0, len(response.content), 7):
        rec.feed(response.content[i:i + 7], 1.0)
    out = rec.finish(1.0)
    assert out.text == REPLY and out.chunks == math.ceil(len(REPLY) / 4) and out.done


def test_ours_config_is_the_shipped_one_pointed_at_the_mock() -> None:
    cfg = ours_config(18000, "sk-bench")
    assert [k["id"] for k in cfg["keys"]] == ["bench"] and cfg["mock_provider"]["enabled"] is False
    assert cfg["providers"] == {"up": {"type": "openai", "base_url": "http://127.0.0.1:18000/v1"}}
    assert list(cfg["models"]) == [MODEL]
    assert cfg["output_filter"]["enabled"] and cfg["redaction"]["enabled"]
    parse_config(yaml.safe_load(yaml.safe_dump(cfg)))
    words = ours_config(18000, "sk-bench", hold_words=True)
    assert words["output_filter"]["hold_words"] is True and cfg["output_filter"]["hold_words"] is False  # shipped
    parse_config(yaml.safe_load(yaml.safe_dump(words)))


def test_parse_args() -> None:
    opts = parse_args(["--targets", "direct,ours", "--requests", "5"])
    assert opts.targets == ["direct", "ours"] and opts.requests == 5 and opts.concurrency == 1
    assert parse_args([]).targets == ["direct", "ours", "portkey-hono2", "litellm-w1"]
    with pytest.raises(SystemExit):
        parse_args(["--targets", "direct nope"])
