"""The fault drill's pure half: what is sent, how answers are classified, segments, the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import orjson
import pytest

from bench.fault_drill_report import (
    CORRECT,
    CUT,
    FAILED,
    INTERRUPTED,
    LOST,
    MARKER_RE,
    RETRYABLE,
    STALLED,
    TWICE,
    WRONG,
    Attempt,
    KillRecord,
    RequestRecord,
    RequestSpec,
    Segment,
    build_report,
    classify_plain,
    classify_stream,
    default_kinds,
    dump_lines,
    final_outcome,
    is_stream,
    lost_cause,
    make_spec,
    parse_sse,
    plan_kills,
    plan_segments,
    recovery,
    render_report,
    resource_growth,
    retry_after_s,
    sdk_retry_delay,
    segment_of,
)
from infra.doubles.mock_provider.server import MockProvider

TODAY = {"mock_provider": 1, "sink": 2, "redaction": 3, "policy": 4, "routing": 5, "provider": 6,
         "output_filter": 7, "ingress": 8, "nats-server": 9}


# -- what is sent and what must come back -----------------------------------------------------------


def sse(*events: object, done: bool = True) -> bytes:
    out = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(content: str | None = None, role: str | None = None, finish: str | None = None) -> dict[str, object]:
    delta: dict[str, str] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def good_stream(expected: str, size: int = 8) -> bytes:
    parts = [expected[i:i + size] for i in range(0, len(expected), size)]
    return sse(chunk("", role="assistant"), *[chunk(p) for p in parts], chunk(finish="stop"))


@pytest.mark.parametrize("stream", [False, True])
async def test_the_expected_answer_is_what_the_mock_answers(stream: bool) -> None:
    spec = make_spec(123, 1.5, stream, "abcdefgh", latency_ms=0, chunk_delay_ms=0)
    assert spec.marker == "r000123-abcdefgh" and MARKER_RE.fullmatch(spec.marker)
    assert spec.marker in spec.text and "[[mock" in spec.text and "[[mock" not in spec.expected
    transport = httpx.ASGITransport(app=MockProvider())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        response = await client.post("/v1/chat/completions", json=spec.body())
    assert response.status_code == 200
    if stream:
        parse = parse_sse(response.content)
        assert 15 <= len(parse.contents) <= 25  # ~0.3-0.5 s at 20 ms a chunk
        assert classify_stream(parse, True, spec.expected) == (CORRECT, "")
    else:
        assert classify_plain(200, response.content, spec.expected) == (CORRECT, "")


def test_stream_directive_paces_the_stream() -> None:
    spec = make_spec(7, 0.0, True, "qwertyui")
    assert "latency_ms=30 chunk_delay_ms=20 chunk_chars=8" in spec.text and spec.body()["stream"] is True
    assert "stream" not in make_spec(7, 0.0, False, "qwertyui").body()


@pytest.mark.parametrize(("fraction", "streams"), [(0.25, 25), (0.0, 0), (1.0, 100), (0.1, 10)])
def test_stream_fraction_is_exact_and_spread(fraction: float, streams: int) -> None:
    chosen = [i for i in range(100) if is_stream(i, fraction)]
    assert len(chosen) == streams
    if fraction == 0.25:
        assert chosen[:3] == [3, 7, 11]


# -- classification ----------------------------------------------------------------------------------

EXPECTED = "Echo: drill r000001-abcdefgh steady open-loop load"


def test_parse_sse_reads_contents_terminal_and_errors() -> None:
    parse = parse_sse(good_stream(EXPECTED).replace(b"\n", b"\r\n")
                      + b'data: {"choices": [], "usage": {"total_tokens": 3}}\n\n')
    assert parse.text == EXPECTED and parse.done == 1 and parse.roles == 1 and parse.finishes == 1
    assert parse.after_terminal == 1 and parse.errors == ()
    broken = parse_sse(b'data: {"error": {"message": "worker failed"}}\n\ndata: not json\n\n')
    assert broken.errors == ("worker failed",) and broken.undecodable == 1 and broken.after_terminal == 1


def test_stream_outcomes() -> None:
    half = EXPECTED[:16]
    err = {"error": {"message": "A gateway worker failed while streaming", "type": "api_error"}}
    assert classify_stream(parse_sse(good_stream(EXPECTED)), True, EXPECTED) == (CORRECT, "")
    outcome, detail = classify_stream(parse_sse(sse(chunk(half), err, done=False)), True, EXPECTED)
    assert outcome == INTERRUPTED and "16/" in detail and "worker failed" in detail
    assert classify_stream(parse_sse(sse(chunk(half), done=False)), False, EXPECTED)[0] == CUT
    # nothing more came until the client's timeout: the gateway stalled it
    outcome, detail = classify_stream(parse_sse(sse(chunk(half), done=False)), False, EXPECTED, timed_out=True)
    assert outcome == STALLED and "16/" in detail
    assert classify_stream(parse_sse(sse(chunk(EXPECTED), done=False)), False, EXPECTED, True)[0] == STALLED
    # ended normally without [DONE]: an SDK hands the truncated text over silently
    assert classify_stream(parse_sse(sse(chunk(half), done=False)), True, EXPECTED)[0] == WRONG
    assert classify_stream(parse_sse(sse(chunk(half), done=True)), True, EXPECTED)[0] == WRONG
    assert classify_stream(parse_sse(sse(chunk("Echo: something else"))), True, EXPECTED)[0] == WRONG
    assert classify_stream(parse_sse(sse(chunk("garbled"), err, done=False)), True, EXPECTED)[0] == WRONG
    assert classify_stream(parse_sse(b"{}"), True, EXPECTED)[0] == WRONG


@pytest.mark.parametrize("body", [
    good_stream(EXPECTED) + b"data: [DONE]\n\n",  # two ends
    good_stream(EXPECTED) + sse(chunk("more"), done=False),  # events after the end
    sse(chunk(EXPECTED[:10]), chunk(EXPECTED)),  # a rerun relayed after a first run's start
    sse(chunk(EXPECTED[:8]), chunk(EXPECTED[:8]), chunk(EXPECTED[8:])),  # a chunk relayed twice
    sse(chunk("", role="assistant"), chunk(EXPECTED), chunk("", role="assistant"), chunk(finish="stop")),
    sse(chunk(EXPECTED, finish="stop"), chunk(finish="stop")),
])
def test_duplicated_streams_are_answered_twice(body: bytes) -> None:
    assert classify_stream(parse_sse(body), True, EXPECTED)[0] == TWICE


def test_plain_outcomes() -> None:
    ok = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": EXPECTED}}]})
    assert classify_plain(200, ok, EXPECTED) == (CORRECT, "")
    assert classify_plain(200, ok.replace(b"Echo", b"Ohce"), EXPECTED)[0] == WRONG
    assert classify_plain(200, b"<html>", EXPECTED)[0] == WRONG
    busy = orjson.dumps({"error": {"message": "broker unavailable", "type": "api_error", "code": "unavailable"}})
    outcome, detail = classify_plain(503, busy, EXPECTED)
    assert outcome == RETRYABLE and detail.startswith("HTTP 503 unavailable: broker")
    for status in (408, 409, 429, 500, 502, 504):
        assert classify_plain(status, b"", EXPECTED)[0] == RETRYABLE
    for status in (400, 401, 404, 413):
        assert classify_plain(status, b"{}", EXPECTED)[0] == FAILED


def test_retry_after_headers_like_the_sdk() -> None:
    assert retry_after_s(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after_s(httpx.Headers({"Retry-After": "2"})) == 2.0
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC), usegmt=True)
    assert retry_after_s({"retry-after": later}, now=now.timestamp()) == pytest.approx(3.0)
    assert retry_after_s({}) is None and retry_after_s({"retry-after": "soon"}) is None


def test_sdk_retry_delay() -> None:
    assert [sdk_retry_delay(n, None, 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert sdk_retry_delay(1, None, 0.999) == pytest.approx(1.0 * (1 - 0.25 * 0.999))
    assert sdk_retry_delay(0, 1.0, 0.5) == 1.0  # the server's hint wins
    assert sdk_retry_delay(0, 120.0, 0.0) == 0.5 and sdk_retry_delay(0, 0.0, 0.0) == 0.5  # out of (0, 60]


# -- final outcomes ---------------------------------------------------------------------------------


def spec(index: int, scheduled: float, stream: bool = False) -> RequestSpec:
    return make_spec(index, scheduled, stream, "abcdefgh")


def record(index: int, scheduled: float, *attempts: Attempt, stream: bool = False,
           finished: bool = True) -> RequestRecord:
    r = RequestRecord(spec(index, scheduled, stream), list(attempts))
    r.finished = attempts[-1].ended if attempts and finished else None
    return r


def ok(start: float, end: float, rid: str, status: int = 200) -> Attempt:
    return Attempt(start, end, status, CORRECT, rid)


def test_final_outcome() -> None:
    cut = Attempt(10.0, 10.4, 200, CUT, "id-1")
    assert final_outcome(record(1, 10.0, cut, stream=True), connection_kills=[10.3]) == CUT
    assert final_outcome(record(1, 10.0, cut, stream=True), connection_kills=[12.0]) == LOST  # no ingress died
    assert final_outcome(record(1, 10.0, cut, stream=True)) == LOST
    refused = Attempt(1.0, 1.1, 503, RETRYABLE, "id-2")
    assert final_outcome(record(2, 1.0, refused, ok(1.6, 1.7, "id-3"))) == CORRECT
    assert final_outcome(record(2, 1.0, refused, refused, refused)) == LOST
    assert final_outcome(record(3, 1.0, Attempt(1.0, 1.1, None, RETRYABLE, detail="ConnectError: x"))) == LOST
    assert final_outcome(record(4, 1.0, ok(1.0, 1.1, "id-4"), finished=False)) == LOST
    assert final_outcome(record(5, 1.0, Attempt(1.0, 1.1, 200, INTERRUPTED, "id-5"))) == INTERRUPTED
    assert final_outcome(record(6, 1.0, Attempt(1.0, 1.1, 400, FAILED, "id-6"))) == LOST
    stalled = record(7, 1.0, Attempt(1.0, 61.0, 200, STALLED, "id-7"), stream=True)
    assert final_outcome(stalled, connection_kills=[30.0]) == LOST and lost_cause(stalled) == "stream stalled mid-body"
    assert lost_cause(record(8, 1.0, Attempt(1.0, 1.1, 503, RETRYABLE, "id-8"))) == "HTTP 503"
    assert lost_cause(record(9, 1.0, Attempt(1.0, 1.1, None, RETRYABLE, detail="ConnectError: x"))) == "ConnectError"
    assert lost_cause(record(10, 1.0, ok(1.0, 1.1, "id-10"), finished=False)) == "unfinished"


# -- the schedule ------------------------------------------------------------------------------------


def test_default_kinds_today() -> None:
    assert default_kinds(TODAY) == ["redaction", "policy", "routing", "provider", "output_filter", "sink",
                                    "ingress", "nats-server"]


def test_default_kinds_with_replicas_and_another_layout() -> None:
    pids = {"mock_provider": 1, "nats-server": 2, "ingress.0": 3, "ingress.1": 4, "stages.0": 5, "stages.1": 6,
            "sink": 7}
    assert default_kinds(pids) == ["stages", "sink", "ingress", "nats-server"]
    assert default_kinds({"mock_provider": 1}) == []


def test_plan_kills_and_segments() -> None:
    kinds = ["policy", "ingress"]
    kills = plan_kills(kinds, warmup_s=5, kill_every_s=5)
    assert kills == [(5, "policy"), (10, "ingress")]
    segments = plan_segments(kills, warmup_s=5, kill_every_s=5, tail_s=10)
    assert segments == [Segment("steady", 0, 5), Segment("kill policy", 5, 10), Segment("kill ingress", 10, 15),
                        Segment("tail", 15, 25)]
    assert [segment_of(t, segments) for t in (0.0, 4.99, 5.0, 12.0, 15.0, 24.9, 30.0)] == [0, 0, 1, 2, 3, 3, 3]
    assert plan_segments([], 5, 5, 10) == [Segment("steady", 0, 5), Segment("tail", 5, 15)]


def test_soak_repeats_the_cycle() -> None:
    kills = plan_kills(["a", "b", "c"], warmup_s=5, kill_every_s=5, soak_s=40)
    assert [k for _, k in kills] == ["a", "b", "c", "a", "b", "c", "a", "b"] and kills[-1][0] == 40
    assert len(plan_kills(["a", "b", "c"], 5, 5, soak_s=4)) == 3  # at least one full cycle
    names = [s.name for s in plan_segments(kills, 5, 5, 10)]
    assert names[1:5] == ["kill a", "kill b", "kill c", "kill a (2)"] and names[-1] == "tail"


# -- the report --------------------------------------------------------------------------------------


SEGMENTS = [Segment("steady", 0, 5), Segment("kill provider", 5, 10), Segment("kill ingress", 10, 15),
            Segment("tail", 15, 25)]


def scenario() -> tuple[list[RequestRecord], list[KillRecord], dict[str, int], dict[str, int]]:
    records = [
        record(0, 1.0, ok(1.0, 1.05, "a0")),
        record(1, 2.0, ok(2.0, 2.1, "a1"), stream=True),
        # provider killed: answered after redelivery, the provider called twice
        record(2, 5.5, ok(5.5, 7.6, "a2")),
        # refused, then correct on the retry: still a refusal in the table
        record(3, 6.0, Attempt(6.0, 6.1, 503, RETRYABLE, "a3"), ok(7.1, 7.2, "a3b")),
        # ingress killed: a stream cut (excused), a plain request lost after 3 connection errors
        record(4, 10.1, Attempt(10.1, 10.3, 200, CUT, "a4"), stream=True),
        record(5, 10.2, *[Attempt(10.2 + i, 10.25 + i, None, RETRYABLE, detail="ConnectError: refused")
                          for i in range(3)]),
        record(6, 10.4, Attempt(10.4, 10.9, 200, INTERRUPTED, "a6"), stream=True),
        record(7, 11.0, Attempt(11.0, 11.1, 200, WRONG, "a7", "content 'x'")),
        record(8, 16.0, ok(16.0, 16.02, "a8")),
        record(9, 17.0, ok(17.0, 17.02, "a8")),  # the gateway handed out one id twice
        record(10, 18.0, ok(18.0, 18.1, "a10"), finished=False),  # never finished
        record(11, 20.0, ok(20.0, 20.03, "a11")),
    ]
    kills = [KillRecord(5.0, "provider", "provider", 101, new_pid=201, replaced_after_s=0.7),
             KillRecord(10.2, "ingress", "ingress", 102, new_pid=202, replaced_after_s=1.9)]
    calls = {r.spec.marker: 1 for r in records}
    calls[records[2].spec.marker] = 2
    calls[records[5].spec.marker] = 3  # each connection error reached the provider?
    rows = {rid: 1 for r in records for rid in r.request_ids}
    rows["a8"] = 2
    rows["a3"] = 0
    del rows["a6"]
    return records, kills, calls, rows


def test_report_counts_per_segment_and_total() -> None:
    records, kills, calls, rows = scenario()
    report = build_report(records, SEGMENTS, kills, calls, rows, options={"rate": 2.0})
    steady, provider, ingress, tail = report.segments
    assert (steady.sent, steady.correct, steady.p50_ms, steady.ids, steady.ids_not_one_row) == (2, 2, 100.0, 2, 0)
    assert (provider.sent, provider.correct, provider.refused, provider.retried, provider.extra_calls) == (
        2, 2, 1, 1, 1)
    assert provider.ids == 3 and provider.ids_not_one_row == 1 and provider.ids_zero_rows == 1  # a3: no row
    assert provider.p99_ms == 2100.0  # from the scheduled time, the retry included
    assert (ingress.sent, ingress.cut, ingress.lost, ingress.interrupted, ingress.wrong) == (4, 1, 1, 1, 1)
    assert ingress.extra_calls == 2 and ingress.lost_causes == {"ConnectError": 1}
    assert ingress.ids_zero_rows == 1  # a6
    assert (tail.sent, tail.correct, tail.twice, tail.lost) == (4, 1, 2, 1)
    assert tail.lost_causes == {"unfinished": 1}
    assert tail.ids == 4 and tail.ids_not_one_row == 2 and tail.ids_zero_rows == 0  # a8 twice, with 2 rows
    total = report.total
    assert (total.sent, total.correct, total.lost, total.twice, total.wrong, total.cut) == (12, 5, 2, 2, 1, 1)
    assert total.extra_calls == 3 and total.refused == 1 and total.ids == 12
    assert total.ids_not_one_row == 4 and total.ids_zero_rows == 2
    assert (total.p50_ms, total.p99_ms) == (100.0, 2100.0)  # of 30, 50, 100, 1200 and 2100 ms
    assert total.lost_causes == {"ConnectError": 1, "unfinished": 1}


def test_report_verdict_says_why() -> None:
    records, kills, calls, rows = scenario()
    report = build_report(records, SEGMENTS, kills, calls, rows, max_extra_pct=2.0)
    assert not report.ok
    failures = "\n".join(report.failures)
    assert "2 lost (kill ingress: 1, tail: 1)" in failures
    assert "1 wrong (kill ingress: 1)" in failures
    assert "2 answered twice (tail: 2)" in failures
    assert "4 of 12 request ids without exactly one requests row (2 without any)" in failures
    assert "3 extra provider calls = 25.0% of 12 sent > 2.0% (kill provider: 1, kill ingress: 2)" in failures
    assert any(e.startswith(records[5].spec.marker) and "ConnectError" in e for e in report.examples)


def test_report_recovery_times() -> None:
    records, kills, calls, rows = scenario()
    report = build_report(records, SEGMENTS, kills, calls, rows)
    provider, ingress = report.kills
    assert provider.first_correct_after_s == pytest.approx(2.2)  # record 3's retry finished at 7.2
    assert ingress.first_correct_after_s == pytest.approx(9.83)  # the first correct one after 10.2 s: at 20.03
    assert recovery(KillRecord(1.0, "x", error="no x"), [(2.0, 2.5)]).first_correct_after_s is None
    assert recovery(KillRecord(3.0, "x", "x", 5), [(2.0, 2.5)]).first_correct_after_s is None


def test_a_clean_run_passes_and_extra_calls_have_a_budget() -> None:
    records = [record(i, i * 0.1, ok(i * 0.1, i * 0.1 + 0.05, f"id{i}")) for i in range(100)]
    calls = {r.spec.marker: 1 for r in records}
    rows = {f"id{i}": 1 for i in range(100)}
    segments = [Segment("steady", 0, 5), Segment("tail", 5, 10)]
    report = build_report(records, segments, [], calls, rows)
    assert report.ok and report.failures == [] and report.total.correct == 100
    calls[records[0].spec.marker] = 3
    assert build_report(records, segments, [], calls, rows, max_extra_pct=2.0).ok  # 2 extra = 2% of 100
    calls[records[1].spec.marker] = 2
    assert not build_report(records, segments, [], calls, rows, max_extra_pct=2.0).ok
    unchecked = build_report(records, segments, [], {}, None, rows_error="no sink is answering queries")
    assert unchecked.failures == ["requests rows not checked: no sink is answering queries"]
    assert unchecked.total.ids_not_one_row is None


def test_dump_lines_one_per_request() -> None:
    records, kills, calls, rows = scenario()
    lines = dump_lines(records, SEGMENTS, kills, calls, rows)
    assert len(lines) == len(records)
    line = lines[3]
    assert (line["segment"], line["outcome"], line["provider_calls"]) == ("kill provider", CORRECT, 1)
    assert line["rows"] == {"a3": 0, "a3b": 1}
    assert [a["status"] for a in line["attempts"]] == [503, 200]
    assert lines[8]["outcome"] == TWICE and lines[10]["finished"] is None
    json.dumps(lines)
    assert dump_lines(records, SEGMENTS, kills, calls, None)[0]["rows"] is None


def test_resource_growth() -> None:
    samples = [
        (10.0, {"sink": (5, 100_000, 40), "gateway-up": (1, 50_000, 20)}),
        (60.0, {"sink": (6, 200_000, 50), "gateway-up": (1, 50_000, 20), "ingress": (7, 80_000, 30)}),
        (120.0, {"sink": (6, 220_000, 50), "gateway-up": (1, 60_000, 25), "ingress": (8, 80_000, 30)}),
    ]
    growth = {g.name: g for g in resource_growth(samples, baseline_t=60.0)}
    assert growth["sink"].rss_start_mb == pytest.approx(195.3) and growth["sink"].rss_growth_pct == 10.0
    assert growth["gateway-up"].fds_growth_pct == 25.0 and growth["ingress"].pid_start == 7
    assert growth["ingress"].pid_end == 8
    assert {g.name for g in resource_growth(samples, baseline_t=999)} == {"sink", "gateway-up"}  # first sample
    assert resource_growth([], 0.0) == []


def test_render_report() -> None:
    records, kills, calls, rows = scenario()
    kills.append(KillRecord(15.0, "nats-server", "nats-server", 103))
    kills.append(KillRecord(16.0, "sink", error="no sink process in pids.json"))
    report = build_report(records, SEGMENTS, kills, calls, rows,
                          options={"rate": 2.0, "stream_fraction": 0.25, "client_retries": 2, "kill_every_s": 5,
                                   "kinds": ["provider", "ingress"]})
    text = render_report(report)
    assert "| segment | sent | correct | lost |" in text
    assert "| kill ingress | 4 | 0 | 1 | 1 | 1 | 1 | 0 | 0 | 1 | 2 |" in text
    assert "| **total** | **12** |" in text
    assert "| 15.0 | nats-server | nats-server | 103 | never |" in text
    assert "not killed: no sink process in pids.json" in text
    assert "- kill ingress: ConnectError ×1" in text
    assert text.rstrip().splitlines()[-1].startswith("- ") and "FAIL:" in text
    json.dumps(report.to_json())  # serializable as is
    assert report.to_json()["ok"] is False
