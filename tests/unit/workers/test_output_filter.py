"""The output-filter worker without a broker: profiles, "not in the input", output guardrails, verdicts.

The real ``StageRuntime`` runs over a recording stand-in for the nats-py connection, so what the caller
receives (replies) and what is recorded (``RequestCompleted``) are read back as they would travel. The
PII analyzer is a small regex stand-in (presidio has its own tests): the logic under test is ours. The
scanners themselves: ``test_output_scanners.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import pytest

from infra.live_config import LiveConfig
from schemas.config import GatewayConfig
from schemas.control import StreamAck
from schemas.envelope import Envelope, Reply, StreamPiece
from schemas.errors import ErrorInfo
from schemas.events import RequestCompleted
from schemas.guardrails import Verdict
from schemas.wire import convert, decode, encode
from stages.guardrails import registry
from stages.guardrails.base import Guardrail, Result, Subject
from stages.vault import new_key, seal
from tests.support.fake_nats import FakeNats, context
from tests.support.fake_pii import fake_scanner
from tests.support.messages import to_dict
from workers import output_filter, output_scanners
from workers.output_filter import OutputFilterWorker

KEY = new_key()
RID = "0190f0c4-0000-7000-8000-00000000000a"
REPLY_TO = "gw.reply.ing.r"
EMAIL = "billing.team@example.org"
FILLER = "The quarterly report is attached and the numbers look fine overall. "


class ForbiddenWord(Guardrail):
    """An output guardrail for these tests: triggers on the word "forbidden", can redact it."""

    phase = "output"
    supports_redact = True
    seen: ClassVar[list[Subject]] = []

    def check(self, subject: Subject) -> Result:
        ForbiddenWord.seen.append(subject)
        count = subject.answer.count("forbidden")
        if not count:
            return Result()
        return Result(score=1.0, findings={"word": count}, redact=lambda text: text.replace("forbidden", "[word]"))


@pytest.fixture(autouse=True)
def test_guardrail(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = registry.load
    monkeypatch.setattr(registry, "load", lambda name: ForbiddenWord if name == "forbidden" else real(name))
    monkeypatch.setattr(output_scanners, "build_scanner", fake_scanner)  # the regex stand-in for presidio
    ForbiddenWord.seen.clear()
    yield


def word(action: str) -> list[dict[str, Any]]:
    return [{"use": "forbidden", "action": action}]


CONFIG_DATA: dict[str, Any] = {
    "guardrails": word("flag"),
    "output_filter": {"blocked": [{"name": "secret", "pattern": r"TOP-SECRET-\w+", "action": "block"}]},
    "guardrail_profiles": {
        "flagging": {"output_filter": {"pii_action": "flag",
                                       "blocked": [{"name": "term", "pattern": "Project X", "action": "flag"}]}},
        "strict": {"output_filter": {"pii_action": "block"}, "guardrails": word("block")},
        "rewrite": {"guardrails": word("redact")},
        "names": {"output_filter": {"engine": "ner", "entities": ["PERSON", "EMAIL_ADDRESS"]}, "guardrails": []},
        "words": {"output_filter": {"hold_words": True}},
    },
    # a profile is built only when a key or a model alias names it (GatewayConfig.active_profiles)
    "keys": [{"id": f"key-{name}", "key_sha256": f"{i:064x}", "tenant": "acme", "guardrail_profile": name}
             for i, name in enumerate(["flagging", "strict", "rewrite", "names", "words"])],
}
CONFIG = GatewayConfig.model_validate(CONFIG_DATA)


@dataclass
class Harness:
    stage: OutputFilterWorker
    nc: FakeNats

    def replies(self) -> list[dict[str, Any]]:
        return [to_dict(decode(d, Reply)) for s, d in self.nc.published if s == REPLY_TO]

    def record(self) -> RequestCompleted:
        records = [decode(d, RequestCompleted) for s, d in self.nc.published if s.startswith("gw.evt.")]
        assert len(records) == 1
        return records[0]

    def verdicts(self) -> dict[str, Verdict]:
        return {v.guardrail: v for v in self.record().verdicts}


def make_harness() -> Harness:
    nc = FakeNats()
    ctx = context(nc, LiveConfig.static(CONFIG, "v1"), envelope_key=base64.b64encode(KEY).decode())
    return Harness(OutputFilterWorker(ctx), nc)


@pytest.fixture
def harness() -> Harness:
    return make_harness()


def envelope(prompt: str, *, profile: str = "", mapping: dict[str, str] | None = None, answer: str | None = None,
             stream: bool = False, **update: Any) -> Envelope:
    values: dict[str, Any] = {
        "request_id": RID, "received_at": 1.0e9, "deadline": 4.0e9, "reply_to": REPLY_TO, "stream": stream,
        "body": {"model": "m", "messages": [{"role": "user", "content": prompt}]},
        "model_requested": "m", "guardrail_profile": profile, "redacted": True, "tenant": "acme",
        "api_key_id": "demo", "vault": seal(mapping, KEY, aad=RID.encode()) if mapping else None,
        "verdicts": [Verdict(guardrail="prompt_injection", kind="prompt_injection", phase="input", outcome="pass")],
    }
    if answer is not None:
        values["response"] = {"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}
    values.update(update)
    return convert(values, Envelope)


# -- whole answers -----------------------------------------------------------------------------------


async def test_pii_not_in_the_input_is_redacted_with_a_verdict(harness: Harness) -> None:
    await harness.stage.work(envelope("hello", answer=f"write to {EMAIL} today"), 0.0)
    (reply,) = harness.replies()
    assert reply["kind"] == "response"
    assert reply["body"]["choices"][0]["message"]["content"] == "write to <EMAIL_ADDRESS> today"
    record = harness.record()
    assert record.status_code == 200 and record.output_findings == {"EMAIL_ADDRESS": 1}
    verdicts = harness.verdicts()
    assert set(verdicts) == {"prompt_injection", "output_filter", "forbidden"}  # input verdicts kept
    kept = {"kind", "phase", "outcome", "score", "findings"}
    assert {k: v for k, v in to_dict(verdicts["output_filter"]).items() if k in kept} == {
        "kind": "output_filter", "phase": "output", "outcome": "redact", "score": 1.0,
        "findings": {"EMAIL_ADDRESS": 1}}
    assert verdicts["forbidden"].outcome == "pass"
    assert EMAIL.encode() not in encode(record)


async def test_values_the_input_contained_are_not_findings(harness: Harness) -> None:
    # in clear in the body the provider saw (allow-listed or not redacted), in any case
    prompt = f"My address is {EMAIL.upper()}, reply to it"
    await harness.stage.work(envelope(prompt, answer=f"I will write to {EMAIL}."), 0.0)
    assert harness.replies()[0]["body"]["choices"][0]["message"]["content"] == f"I will write to {EMAIL}."
    assert harness.verdicts()["output_filter"].outcome == "pass"
    assert harness.record().output_findings == {}


async def test_values_of_the_placeholder_map_are_not_findings(harness: Harness) -> None:
    mapping = {"<EMAIL_ADDRESS_1>": EMAIL}
    answer = f"Mail <EMAIL_ADDRESS_1> (that is {EMAIL}) or ops@example.com"
    await harness.stage.work(envelope("mail <EMAIL_ADDRESS_1>", mapping=mapping, answer=answer), 0.0)
    content = harness.replies()[0]["body"]["choices"][0]["message"]["content"]
    assert content == f"Mail {EMAIL} (that is {EMAIL}) or <EMAIL_ADDRESS>"
    assert harness.verdicts()["output_filter"].findings == {"EMAIL_ADDRESS": 1}
    stored = harness.record().response_body
    assert EMAIL not in stored and "<EMAIL_ADDRESS_1>" in stored  # concealed again for the store


async def test_flag_profile_records_and_leaves_the_text(harness: Harness) -> None:
    answer = f"Project X: mail {EMAIL}, forbidden topic"
    await harness.stage.work(envelope("hi", profile="flagging", answer=answer), 0.0)
    assert harness.replies()[0]["body"]["choices"][0]["message"]["content"] == answer
    verdicts = harness.verdicts()
    assert verdicts["output_filter"].outcome == "flag"
    assert verdicts["output_filter"].findings == {"EMAIL_ADDRESS": 1, "blocked:term": 1}
    assert verdicts["forbidden"].outcome == "flag"  # the profile inherits the top-level guardrails
    assert EMAIL not in orjson.dumps([to_dict(v) for v in verdicts.values()]).decode()


async def test_block_profile_ends_the_request_with_the_verdicts(harness: Harness) -> None:
    await harness.stage.work(envelope("hi", profile="strict", answer=f"mail {EMAIL}"), 0.0)
    (reply,) = harness.replies()
    assert reply["kind"] == "error" and reply["status"] == 400
    assert reply["error"]["code"] == "content_blocked" and EMAIL not in reply["error"]["message"]
    record = harness.record()
    assert record.status_code == 400 and record.error_code == "content_blocked"
    assert harness.verdicts()["output_filter"].outcome == "block"
    assert ForbiddenWord.seen == []  # blocked by the filter: the guardrails never saw the answer


async def test_unknown_profile_falls_back_to_default(harness: Harness) -> None:
    await harness.stage.work(envelope("hi", profile="gone-after-reload", answer=f"mail {EMAIL}"), 0.0)
    assert harness.replies()[0]["body"]["choices"][0]["message"]["content"] == "mail <EMAIL_ADDRESS>"


async def test_a_profile_only_a_kv_key_names_is_built_on_first_use() -> None:
    # no config key names "names": a GW_KEYS key may, and the redaction stage put it on the envelope
    config = GatewayConfig.model_validate({**CONFIG_DATA, "keys": []})
    assert "names" not in config.active_profiles
    nc = FakeNats()
    live = LiveConfig.static(config, "v1")
    stage = OutputFilterWorker(context(nc, live, envelope_key=base64.b64encode(KEY).decode()))
    await stage.work(envelope("hi", profile="names", answer=f"Ada Lovelace wrote to {EMAIL}"), 0.0)
    reply = [to_dict(decode(d, Reply)) for s, d in nc.published if s == REPLY_TO][0]
    assert reply["body"]["choices"][0]["message"]["content"] == "<PERSON> wrote to <EMAIL_ADDRESS>"
    assert len(stage.extra_scanners) == 1


async def test_profile_scanner_finds_its_entities(harness: Harness) -> None:
    answer = f"Ada Lovelace wrote to {EMAIL}"
    await harness.stage.work(envelope("hi", profile="names", answer=answer), 0.0)
    content = harness.replies()[0]["body"]["choices"][0]["message"]["content"]
    assert content == "<PERSON> wrote to <EMAIL_ADDRESS>"


async def test_output_guardrail_block(harness: Harness) -> None:
    await harness.stage.work(envelope("hi", profile="strict", answer="a forbidden answer"), 0.0)
    (reply,) = harness.replies()
    assert reply["kind"] == "error" and reply["status"] == 400 and reply["error"]["code"] == "guardrail_blocked"
    verdicts = harness.verdicts()
    assert verdicts["output_filter"].outcome == "pass"
    assert verdicts["forbidden"].outcome == "block" and verdicts["forbidden"].findings == {"word": 1}
    assert harness.record().error_code == "guardrail_blocked"


async def test_output_guardrail_sees_the_restored_filtered_answer_and_rewrites_it(harness: Harness) -> None:
    mapping = {"<PERSON_1>": "Jane Doe"}
    answer = f"<PERSON_1>: a forbidden word, mail {EMAIL}"
    await harness.stage.work(envelope("I am <PERSON_1>", profile="rewrite", mapping=mapping,
                                          answer=answer), 0.0)
    (subject,) = ForbiddenWord.seen
    assert subject.phase == "output" and subject.answer == "Jane Doe: a forbidden word, mail <EMAIL_ADDRESS>"
    assert subject.request["messages"][0]["content"] == "I am <PERSON_1>" and subject.response is not None
    assert (subject.tenant, subject.api_key_id, subject.model) == ("acme", "demo", "m")
    content = harness.replies()[0]["body"]["choices"][0]["message"]["content"]
    assert content == "Jane Doe: a [word] word, mail <EMAIL_ADDRESS>"
    assert harness.verdicts()["forbidden"].outcome == "redact"
    assert "Jane Doe" not in harness.record().response_body


async def test_one_guardrail_set_per_version_and_profile(harness: Harness) -> None:
    stage = harness.stage
    strict, default = CONFIG.profile("strict"), CONFIG.profile("default")
    assert stage.guardrail_set(strict) is stage.guardrail_set(strict)
    assert stage.guardrail_set(strict) is not stage.guardrail_set(default)
    first = stage.guardrail_set(strict)
    await stage.scanners.update(CONFIG, "v2")  # a new version with the same scanners
    assert stage.guardrail_set(strict) is not first


# -- streams -----------------------------------------------------------------------------------------


def chunk(text: str | None = None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if text is not None:
        delta["content"] = text
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def run_stream(harness: Harness, env: Envelope, pieces: list[str]) -> list[dict[str, Any]]:
    stage = harness.stage
    stage.open(env)
    chunks = [chunk(role=True), *(chunk(p) for p in pieces), chunk(finish="stop")]
    for seq, body in enumerate(chunks):
        await stage.piece(StreamPiece(request_id=RID, seq=seq, chunk=body))
    await stage.piece(StreamPiece(request_id=RID, seq=len(chunks), final=env))
    assert RID not in stage.sessions
    return harness.replies()


def streamed_text(replies: list[dict[str, Any]]) -> str:
    return "".join(c["delta"].get("content") or "" for r in replies if r["kind"] == "chunk"
                   for c in r["body"]["choices"])


@pytest.mark.parametrize("profile", ["", "words"])
async def test_stream_catches_pii_split_across_two_chunks_at_every_point(profile: str) -> None:
    text = FILLER + "Contact " + EMAIL + " now. " + FILLER
    start = text.index(EMAIL)
    for split in range(start, start + len(EMAIL) + 1):
        h = make_harness()
        replies = await run_stream(h, envelope("hi", profile=profile, stream=True), [text[:split], text[split:]])
        # hold_words: caught whole at every split; by default the letters of "billing" split off before its
        # dot are already sent, and the rest of the address is redacted
        sent = EMAIL[: split - start] if not profile and split - start <= len("billing") else ""
        assert streamed_text(replies) == text.replace(EMAIL, sent + "<EMAIL_ADDRESS>"), split
        assert all(EMAIL not in orjson.dumps(r).decode() for r in replies), split
        assert replies[-1]["kind"] == "end"
        verdict = h.verdicts()["output_filter"]
        assert (verdict.outcome, verdict.findings) == ("redact", {"EMAIL_ADDRESS": 1}), split


async def test_stream_value_from_the_input_passes(harness: Harness) -> None:
    text = f"I will write to {EMAIL} today."
    replies = await run_stream(harness, envelope(f"my mail: {EMAIL}", stream=True), [text[:20], text[20:]])
    assert streamed_text(replies) == text and harness.verdicts()["output_filter"].outcome == "pass"


async def test_stream_output_guardrail_runs_on_the_whole_text_at_the_end(harness: Harness) -> None:
    replies = await run_stream(harness, envelope("hi", stream=True), ["a forb", "idden answer"])
    assert replies[-1]["kind"] == "end"
    (subject,) = ForbiddenWord.seen
    assert subject.answer == "a forbidden answer" and subject.response is None
    assert harness.verdicts()["forbidden"].outcome == "flag"


async def test_stream_redact_outcome_is_recorded_as_flag(harness: Harness) -> None:
    replies = await run_stream(harness, envelope("hi", profile="rewrite", stream=True), ["a forbidden answer"])
    assert streamed_text(replies) == "a forbidden answer" and replies[-1]["kind"] == "end"
    assert harness.verdicts()["forbidden"].outcome == "flag"


async def test_stream_output_guardrail_block_ends_in_band(harness: Harness) -> None:
    text = FILLER + "and a forbidden word at the end."
    replies = await run_stream(harness, envelope("hi", profile="strict", stream=True), [text[:30], text[30:]])
    kinds = [r["kind"] for r in replies]
    assert kinds[-1] == "error" and "end" not in kinds and kinds.count("error") == 1
    assert replies[-1]["error"]["code"] == "guardrail_blocked" and replies[-1]["status"] == 400
    # the finishing chunk was held for the check: never sent (the text went as it was safe to)
    assert all(c["finish_reason"] is None for r in replies if r["kind"] == "chunk" for c in r["body"]["choices"])
    record = harness.record()
    assert record.status_code == 400 and record.error_code == "guardrail_blocked" and record.stream
    verdicts = harness.verdicts()
    assert verdicts["forbidden"].outcome == "block" and verdicts["output_filter"].outcome == "pass"


async def test_stream_filter_block_records_the_verdict(harness: Harness) -> None:
    text = FILLER + "the code is TOP-SECRET-42 ok " + FILLER
    replies = await run_stream(harness, envelope("hi", stream=True), [text[:70], text[70:]])
    assert replies[-1]["kind"] == "error" and replies[-1]["error"]["code"] == "content_blocked"
    assert "TOP-SECRET" not in streamed_text(replies)
    verdict = harness.verdicts()["output_filter"]
    assert verdict.outcome == "block" and verdict.findings == {"blocked:secret": 1}
    assert ForbiddenWord.seen == []


async def test_ner_profile_streams_scan_in_two_tiers(harness: Harness) -> None:
    text = FILLER + "Ada Lovelace wrote to " + EMAIL + " about it. " + FILLER
    name_at = text.index("Ada")
    for split in range(name_at, name_at + len("Ada Lovelace") + 1):
        h = make_harness()
        replies = await run_stream(h, envelope("hi", profile="names", stream=True), [text[:split], text[split:]])
        assert streamed_text(replies) == text.replace("Ada Lovelace", "<PERSON>").replace(EMAIL, "<EMAIL_ADDRESS>")
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    stage = harness.stage
    stage.open(envelope("hi", profile="names", stream=True))
    session = stage.sessions[RID]
    for seq, body in enumerate([chunk(p) for p in pieces]):
        await stage.piece(StreamPiece(request_id=RID, seq=seq, chunk=body))
    assert 0 < session.filter.full_scans < session.filter.scans


async def test_broken_stream_gets_its_filtered_tail_then_the_error(harness: Harness) -> None:
    stage, env = harness.stage, envelope("hi", stream=True)
    stage.open(env)
    await stage.piece(StreamPiece(request_id=RID, seq=0, chunk=chunk(f"a forbidden text for {EMAIL}")))
    error = ErrorInfo(status_code=502, type="upstream_error", code="stream_interrupted", message="cut")
    await stage.piece(StreamPiece(request_id=RID, seq=1, final=env, error=error))
    replies = harness.replies()
    assert streamed_text(replies) == "a forbidden text for <EMAIL_ADDRESS>"
    assert replies[-1]["kind"] == "error" and replies[-1]["error"]["code"] == "stream_interrupted"
    assert ForbiddenWord.seen == []  # a partial text is not an answer to check
    assert harness.verdicts()["output_filter"].outcome == "redact" and harness.record().status_code == 502


# -- the stream's hand-offs: where it stands, resends, replays ---------------------------------------


async def test_status_says_where_a_stream_stands(harness: Harness) -> None:
    stage = harness.stage
    assert stage.status(RID) == StreamAck(next=None)  # a stream this replica does not hold
    stage.open(envelope("hi", stream=True))
    assert stage.status(RID) == StreamAck(next=0)
    assert await stage.piece(StreamPiece(request_id=RID, seq=0, chunk=chunk("one "))) == StreamAck(next=1)
    # a gap (piece 1 lost in a broker restart) and a duplicate: both answered with what is expected
    assert await stage.piece(StreamPiece(request_id=RID, seq=2, chunk=chunk("three"))) == StreamAck(next=1)
    assert await stage.piece(StreamPiece(request_id=RID, seq=0, chunk=chunk("one "))) == StreamAck(next=1)
    assert await stage.piece(StreamPiece(request_id=RID, seq=1, chunk=chunk("two "))) == StreamAck(next=2)
    final = await stage.piece(StreamPiece(request_id=RID, seq=2, final=envelope("hi", stream=True)))
    assert final == StreamAck(taken=True) and stage.status(RID) == StreamAck(taken=True)


async def test_a_replayed_stream_gives_the_same_chunks() -> None:
    """Another replica given every piece again produces the very chunks the first one sent (ingress
    de-duplicates them by seq)."""
    text = FILLER + "Contact " + EMAIL + " now."
    pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
    runs = []
    for _ in range(2):
        h = make_harness()
        runs.append(await run_stream(h, envelope("hi", stream=True), pieces))
    assert all(r["src"] for run in runs for r in run)  # each replica's own subject: where to ask for a resend
    assert runs[0][0]["src"] != runs[1][0]["src"]
    same = [[{k: v for k, v in r.items() if k != "src"} for r in run] for run in runs]
    assert same[0] == same[1]
    assert [r["seq"] for r in runs[0]] == list(range(len(runs[0])))


async def test_resend_repeats_the_chunks_sent_from_a_seq(harness: Harness) -> None:
    stage = harness.stage
    stage.open(envelope("hi", stream=True))
    for seq, text in enumerate([FILLER, FILLER, FILLER]):
        await stage.piece(StreamPiece(request_id=RID, seq=seq, chunk=chunk(text)))
    first = harness.replies()
    await stage.resend(RID, 1)
    again = harness.replies()[len(first):]
    assert again == first[1:]
    await stage.resend("unknown", 0)  # nothing to resend: harmless


async def test_a_blocked_stream_tells_the_provider_to_stop(harness: Harness) -> None:
    stage = harness.stage
    stage.open(envelope("hi", stream=True))
    text = "the code is TOP-SECRET-42 ok " + FILLER
    ack = await stage.piece(StreamPiece(request_id=RID, seq=0, chunk=chunk(text)))
    assert ack == StreamAck(taken=True)  # the filter ended the request: the provider stage stops pumping
    assert stage.status(RID) == StreamAck(taken=True)
    assert harness.replies()[-1]["kind"] == "error"


def test_silent_streams_are_forgotten(harness: Harness) -> None:
    stage = harness.stage
    stage.open(envelope("hi", stream=True))
    session = stage.sessions[RID]
    stage.sweep(now=session.last_seen + 1.0)
    assert RID in stage.sessions
    stage.sweep(now=session.last_seen + output_filter.SESSION_IDLE_S + 1.0)
    assert RID not in stage.sessions  # its provider stage died: JetStream reruns the request


def call_chunk(arguments: str, *, first: bool = False, finish: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
    if first:
        call.update(id="call_1", type="function", function={"name": "send_mail", "arguments": arguments})
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": finish}]}


async def test_streamed_tool_call_arguments_get_placeholders_restored_across_fragments(harness: Harness) -> None:
    mapping = {"<EMAIL_ADDRESS_1>": 'jane "j" doe@corp.example.com'}
    arguments = '{"to": "<EMAIL_ADDRESS_1>", "cc": "<EMAIL_ADDRESS_2>", "note": "<b>"}'
    stage = harness.stage
    stage.open(envelope("mail <EMAIL_ADDRESS_1>", mapping=mapping, stream=True))
    pieces = [arguments[i : i + 5] for i in range(0, len(arguments), 5)]
    chunks = [call_chunk(pieces[0], first=True), *(call_chunk(p) for p in pieces[1:]),
              call_chunk("", finish="tool_calls")]
    for seq, body in enumerate(chunks):
        await stage.piece(StreamPiece(request_id=RID, seq=seq, chunk=body))
    await stage.piece(StreamPiece(request_id=RID, seq=len(chunks), final=envelope("x", mapping=mapping, stream=True)))
    fragments = [call["function"]["arguments"] for r in harness.replies() if r["kind"] == "chunk"
                 for c in r["body"]["choices"] for call in c["delta"].get("tool_calls") or ()]
    assert json.loads("".join(fragments)) == {
        "to": 'jane "j" doe@corp.example.com', "cc": "<EMAIL_ADDRESS_2>", "note": "<b>"}
    assert not any("<EMAIL_ADDRESS_1" in f for f in fragments)
