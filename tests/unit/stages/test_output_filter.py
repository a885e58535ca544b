from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest

from schemas.config import DEFAULT_ENTITIES, BlockedPattern, CustomRecognizer, OutputFilter
from schemas.errors import ContentBlocked
from stages.output_filter import InputValues, StreamFilter, filter_response, filter_verdict
from stages.pii import PiiScanner

MAPPING = {"<EMAIL_ADDRESS_1>": "jane@corp.example.com", "<PHONE_NUMBER_1>": "+1 212 555 0143"}
SECRET = BlockedPattern(name="secret", pattern=r"(?i)\bproject x\b", action="redact")
KEY = BlockedPattern(name="key", pattern=r"sk-[A-Za-z0-9]{8}", action="block")
FILLER = "The quarterly report is attached and the numbers look fine overall, thanks for asking. "


def _response(*contents: str | None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
            for i, c in enumerate(contents)
        ],
        "usage": {"prompt_tokens": 1},
    }


def _filter(text: str, scanner: PiiScanner, config: OutputFilter, restore: bool = True) -> Any:
    return filter_response(_response(text), mapping=MAPPING, scanner=scanner, config=config, restore=restore)


def _content(result: Any, i: int = 0) -> str:
    return result.response["choices"][i]["message"]["content"]  # type: ignore[no-any-return]


def _stream(f: StreamFilter, chunks: list[str], index: int = 0) -> tuple[str, int]:
    """Output and the largest hold-back seen (received minus emitted characters, before restoring)."""
    out, received, lag = "", 0, 0
    for chunk in chunks:
        out += f.push(index, chunk)
        received += len(chunk)
        lag = max(lag, received - len(out))
    return out + f.finish(index), lag


def _random_chunks(text: str, rng: random.Random, largest: int = 9) -> list[str]:
    chunks, i = [], 0
    while i < len(text):
        n = rng.randint(1, largest)
        chunks.append(text[i : i + n])
        i += n
    return chunks


# --- whole responses ---------------------------------------------------------------------------


def test_pii_redacted_then_placeholders_restored(scanner: PiiScanner) -> None:
    text = "I mailed <EMAIL_ADDRESS_1>; billing is billing@example.org, Project X too."
    result = _filter(text, scanner, OutputFilter(blocked=[SECRET]))
    assert (
        _content(result)
        == "I mailed jane@corp.example.com; billing is <EMAIL_ADDRESS>, [REDACTED:secret] too."
    )
    assert result.findings == {"EMAIL_ADDRESS": 1, "blocked:secret": 1}
    assert result.redactions == 2 and result.blocked is None


def test_placeholders_are_never_findings(scanner: PiiScanner) -> None:
    config = OutputFilter(blocked=[BlockedPattern(name="n", pattern=r"NUMBER_1|\d", action="block")])
    result = _filter("Call <PHONE_NUMBER_1> or write <EMAIL_ADDRESS_1>.", scanner, config)
    assert result.findings == {} and result.blocked is None
    assert _content(result) == "Call +1 212 555 0143 or write jane@corp.example.com."


def test_restore_off_keeps_placeholders(scanner: PiiScanner) -> None:
    result = _filter("write <EMAIL_ADDRESS_1>", scanner, OutputFilter(), restore=False)
    assert _content(result) == "write <EMAIL_ADDRESS_1>"


def test_pii_block_and_off(scanner: PiiScanner) -> None:
    text = "reach me at bob@example.net"
    blocked = _filter(text, scanner, OutputFilter(pii_action="block"))
    assert isinstance(blocked.blocked, ContentBlocked) and "EMAIL_ADDRESS" in blocked.blocked.message
    assert "bob@" not in blocked.blocked.message and blocked.findings == {"EMAIL_ADDRESS": 1}
    off = _filter(text, scanner, OutputFilter(pii_action="off"))
    assert _content(off) == text and off.findings == {} and off.redactions == 0


def test_blocked_pattern_block(scanner: PiiScanner) -> None:
    result = _filter("your key is sk-ABCdef12 ok", scanner, OutputFilter(blocked=[KEY]))
    assert isinstance(result.blocked, ContentBlocked) and result.findings == {"blocked:key": 1}
    assert result.blocked.code == "content_blocked" and "sk-" not in result.blocked.message


def test_disabled_filter_only_restores(scanner: PiiScanner) -> None:
    result = _filter(
        "bob@example.net and <EMAIL_ADDRESS_1>", scanner, OutputFilter(enabled=False, blocked=[KEY])
    )
    assert _content(result) == "bob@example.net and jane@corp.example.com" and result.findings == {}


def test_every_choice_filtered_response_not_mutated(scanner: PiiScanner) -> None:
    response = _response("a: bob@example.net", None, "b: <EMAIL_ADDRESS_1>")
    before = copy.deepcopy(response)
    result = filter_response(response, mapping=MAPPING, scanner=scanner, config=OutputFilter(), restore=True)
    assert response == before
    assert [c["message"]["content"] for c in result.response["choices"]] == [
        "a: <EMAIL_ADDRESS>",
        None,
        "b: jane@corp.example.com",
    ]
    assert result.response["usage"] == response["usage"] and result.response["id"] == "c1"


def test_tool_call_arguments_get_placeholders_restored_json_escaped(scanner: PiiScanner) -> None:
    mapping = {"<X_1>": 'say "hi"\\'}
    response = _response(None)
    arguments = json.dumps({"to": "<EMAIL_ADDRESS_1>", "note": "<X_1>"})
    response["choices"][0]["message"]["tool_calls"] = [
        {"id": "t", "type": "function", "function": {"name": "send", "arguments": arguments}}
    ]
    result = filter_response(
        response, mapping={**MAPPING, **mapping}, scanner=scanner, config=OutputFilter(), restore=True
    )
    call = result.response["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"to": "jane@corp.example.com", "note": 'say "hi"\\'}


# --- streams -----------------------------------------------------------------------------------


WORDS = OutputFilter(hold_words=True)


def test_email_split_at_every_point_is_caught(scanner: PiiScanner) -> None:
    email = "billing.team@example.org"
    text = FILLER + "Contact " + email + " now. " + FILLER
    expected = _content(_filter(text, scanner, OutputFilter()))
    assert "<EMAIL_ADDRESS>" in expected and email not in expected
    start = text.index(email)
    for split in range(start, start + len(email) + 1):
        f = StreamFilter(MAPPING, scanner, WORDS, True)
        out, _ = _stream(f, [text[:split], text[split:]])
        assert out == expected, split
        # also in small chunks after the split, so text is emitted while the email is incomplete
        f = StreamFilter(MAPPING, scanner, WORDS, True)
        tail = [text[i : i + 3] for i in range(split, len(text), 3)]
        out, _ = _stream(f, [text[:split], *tail])
        assert out == expected and f.findings == {"EMAIL_ADDRESS": 1} and f.redactions == 1, split


def test_placeholder_split_at_every_point_is_restored(scanner: PiiScanner) -> None:
    text = FILLER + "I wrote to <EMAIL_ADDRESS_1> yesterday." + FILLER
    for config in (OutputFilter(), OutputFilter(enabled=False), OutputFilter(window_chars=8)):
        for split in range(len(FILLER), len(FILLER) + 40):
            f = StreamFilter(MAPPING, scanner, config, True)
            out, _ = _stream(f, [text[:split], text[split : split + 5], text[split + 5 :]])
            assert out == text.replace("<EMAIL_ADDRESS_1>", "jane@corp.example.com"), (config, split)


def test_unterminated_placeholder_tail_is_held(scanner: PiiScanner) -> None:
    f = StreamFilter(MAPPING, scanner, OutputFilter(enabled=False), True)
    assert f.push(0, "Hello <EMAIL_ADDR") == "Hello "
    assert f.push(0, "ESS_1") == ""
    assert f.push(0, "> and <b>bold</b> <EMAIL") == "jane@corp.example.com and <b>bold</b> "
    assert f.finish(0) == "<EMAIL"


@pytest.mark.parametrize("hold_words", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_stream_equals_whole_response(scanner: PiiScanner, seed: int, hold_words: bool) -> None:
    rng = random.Random(seed)
    pieces = [
        FILLER,
        "mail <EMAIL_ADDRESS_1> or ops@example.com, ",
        "call +44 20 7946 0958 or <PHONE_NUMBER_1>; ",
        "Project X ships; host 10.20.30.40 and card 4111-1111-1111-1111. ",
        "IBAN DE89370400440532013000 ",
    ]
    text = "".join(rng.sample(pieces, len(pieces)) * 2)
    config = OutputFilter(blocked=[SECRET], window_chars=rng.choice([48, 64, 100]), hold_words=hold_words)
    whole = _filter(text, scanner, config)
    f = StreamFilter(MAPPING, scanner, config, True)
    out, lag = _stream(f, _random_chunks(text, rng))
    assert f.findings == whole.findings and f.redactions == whole.redactions
    if hold_words:
        assert out == _content(whole)
    else:  # the only difference: an address's first letters, sent before its "@" showed what they were
        assert re.sub(r"[a-z]*<EMAIL_ADDRESS>", "<EMAIL_ADDRESS>", out) == _content(whole)


def test_hold_back_never_exceeds_the_window(scanner: PiiScanner) -> None:
    text = FILLER * 6
    for window in (8, 20, 64):
        f = StreamFilter({}, scanner, OutputFilter(window_chars=window), True)
        rng = random.Random(window)
        out, lag = _stream(f, _random_chunks(text, rng, largest=5))
        assert out == text and lag <= window
    # a detected value straddling the window edge is held whole: at most window + its length
    text = FILLER + "write to billing.team@example.org now " + FILLER
    f = StreamFilter({}, scanner, OutputFilter(window_chars=32), True)
    out, lag = _stream(f, list(text))
    assert "<EMAIL_ADDRESS>" in out and lag <= 32 + len("billing.team@example.org")


def test_values_up_to_max_value_chars_are_caught(scanner: PiiScanner) -> None:
    config = OutputFilter(
        window_chars=40, blocked=[BlockedPattern(name="t", pattern=r"TKN[a-f0-9]+Z", action="redact")]
    )
    f0 = StreamFilter({}, scanner, config, False)
    value = "TKN" + "a" * (f0.max_value_chars - 4) + "Z"
    assert len(value) == f0.max_value_chars == 40  # the whole window: a value is held until it completes
    text = FILLER + value + " " + FILLER
    for size in (1, 2, 3, 7, 10):
        for offset in range(size):
            f = StreamFilter({}, scanner, config, False)
            out, _ = _stream(
                f, [text[:offset]] + [text[i : i + size] for i in range(offset, len(text), size)]
            )
            assert out == FILLER + "[REDACTED:t] " + FILLER, (size, offset)


@pytest.mark.parametrize("value", [
    "jane.doe@example.com", "+44 20 7946 0958", "(212) 555-0190", "4111-1111-1111-1111", "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00", "10.20.30.40", "078-05-1120", "Project X",
])
def test_a_value_starting_at_the_very_end_of_a_chunk_is_caught_whole(scanner: PiiScanner, value: str) -> None:
    config = OutputFilter(blocked=[SECRET])
    text = FILLER + "see " + value + " now. " + FILLER
    expected = _content(_filter(text, scanner, config))
    assert value not in expected
    start = text.index(value)
    for size in (1, 2, 3, 4, 5):
        for hold_words in (True, False):
            f = StreamFilter(MAPPING, scanner, config.model_copy(update={"hold_words": hold_words}), True)
            rest = [text[i : i + size] for i in range(start + 1, len(text), size)]
            out, _ = _stream(f, [text[: start + 1], *rest])  # the first chunk ends with the value's first character
            if hold_words or "@" not in value:
                assert out == expected, (value, size)
            else:  # some of "jane" went out before its dot showed it began an address; the rest did not
                assert re.sub(r"j?a?n?e?(?=<EMAIL_ADDRESS>)", "", out) == expected and "jane." not in out, size


def test_prose_keeps_the_providers_cadence(scanner: PiiScanner) -> None:
    text = FILLER * 3
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)]
    for hold_words in (True, False):
        f = StreamFilter({}, scanner, OutputFilter(hold_words=hold_words), False)
        pieces = [f.push(0, c) for c in chunks]
        assert "".join(pieces) + f.finish(0) == text
        if hold_words:  # a chunk inside a word (or ending in "ing.") waits for its end; every other goes at once
            ends_a_word = [i for i, c in enumerate(chunks) if any(ch.isspace() or ch == "," for ch in c)]
            assert [i for i, p in enumerate(pieces) if p] == ends_a_word
        else:  # every chunk goes out when it came but one ending a sentence ("ing.": "jane." may go on as an
            # address) or in a capital (an IBAN's start): it waits for the next
            assert sum(p != c for p, c in zip(pieces, chunks, strict=True)) <= 2 * text.count(". ")


def test_without_hold_words_an_address_split_in_its_first_letters_leaves_them(scanner: PiiScanner) -> None:
    f = StreamFilter({}, scanner, OutputFilter(hold_words=False), False)
    out, _ = _stream(f, ["Contact bill", "ing.team@exa", "mple.org now."])
    assert out == "Contact bill<EMAIL_ADDRESS> now." and f.findings == {"EMAIL_ADDRESS": 1}
    f = StreamFilter({}, scanner, OutputFilter(hold_words=False), False)
    out, _ = _stream(f, ["Contact billing.t", "eam@exa", "mple.org now."])  # a dot inside: held from there on
    assert out == "Contact <EMAIL_ADDRESS> now."


def test_block_in_stream_raises_and_stays_blocked(scanner: PiiScanner) -> None:
    f = StreamFilter(MAPPING, scanner, OutputFilter(blocked=[KEY]), True)
    emitted = ""
    with pytest.raises(ContentBlocked):
        for chunk in _random_chunks(FILLER + "the key: sk-ABCdef12 " + FILLER, random.Random(1), 4):
            emitted += f.push(0, chunk)
        emitted += f.finish(0)
    assert "sk-" not in emitted and f.findings == {"blocked:key": 1}
    with pytest.raises(ContentBlocked):
        f.push(0, "more")
    with pytest.raises(ContentBlocked):
        f.finish(1)


def test_pii_block_in_stream(scanner: PiiScanner) -> None:
    f = StreamFilter({}, scanner, OutputFilter(pii_action="block"), False)
    with pytest.raises(ContentBlocked, match="EMAIL_ADDRESS"):
        _stream(f, list("short answer bob@example.net"))


def test_choices_are_independent(scanner: PiiScanner) -> None:
    f = StreamFilter(MAPPING, scanner, WORDS, True)
    a, b = FILLER + "a@example.com " + FILLER, FILLER + "<EMAIL_ADDRESS_1> " + FILLER
    outs = {0: "", 1: ""}
    for i in range(0, max(len(a), len(b)), 4):
        outs[0] += f.push(0, a[i : i + 4])
        outs[1] += f.push(1, b[i : i + 4])
    outs[0] += f.finish(0)
    outs[1] += f.finish(1)
    assert outs[0] == FILLER + "<EMAIL_ADDRESS> " + FILLER
    assert outs[1] == FILLER + "jane@corp.example.com " + FILLER
    assert f.finish(0) == "" and f.finish(7) == ""


def test_nothing_to_do_passes_chunks_through(scanner: PiiScanner) -> None:
    f = StreamFilter({}, scanner, OutputFilter(enabled=False), True)
    assert f.push(0, "bob@example.net <EMAIL_ADDRESS_1>") == "bob@example.net <EMAIL_ADDRESS_1>"
    assert f.finish(0) == ""


# --- flag actions, "PII the input did not contain", verdicts ------------------------------------------

TERM = BlockedPattern(name="term", pattern=r"(?i)\bproject x\b", action="flag")


def test_flag_records_and_leaves_the_text(scanner: PiiScanner) -> None:
    text = "mail ops@example.com about Project X, and <EMAIL_ADDRESS_1>"
    result = _filter(text, scanner, OutputFilter(pii_action="flag", blocked=[TERM]))
    assert _content(result) == "mail ops@example.com about Project X, and jane@corp.example.com"
    assert result.findings == {"EMAIL_ADDRESS": 1, "blocked:term": 1}
    assert result.redactions == 0 and result.blocked is None


def test_flag_and_redact_overlapping(scanner: PiiScanner) -> None:
    mail = BlockedPattern(name="mail", pattern=r"ops@", action="flag")
    result = _filter("write ops@example.com now", scanner, OutputFilter(blocked=[mail]))
    assert _content(result) == "write <EMAIL_ADDRESS> now"
    assert result.findings == {"EMAIL_ADDRESS": 1, "blocked:mail": 1} and result.redactions == 1


def test_values_the_input_contained_are_not_findings(scanner: PiiScanner) -> None:
    body = {"messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "I am OPS@example.com"}]}]}
    known = InputValues(body, MAPPING)
    text = "ops@example.com, jane@corp.example.com and new@example.net; call +1 212 555 0143"
    result = filter_response(_response(text), mapping=MAPPING, scanner=scanner, config=OutputFilter(),
                             restore=True, known=known)
    assert _content(result) == "ops@example.com, jane@corp.example.com and <EMAIL_ADDRESS>; call +1 212 555 0143"
    assert result.findings == {"EMAIL_ADDRESS": 1}
    # blocked patterns apply whatever the input held
    term = BlockedPattern(name="t", pattern="ops@", action="block")
    blocked = filter_response(_response(text), mapping=MAPPING, scanner=scanner,
                              config=OutputFilter(blocked=[term]), restore=True, known=known)
    assert blocked.blocked is not None


def test_input_values_are_joined_only_when_asked() -> None:
    class Body(dict[str, object]):
        reads = 0

        def get(self, key: str, default: object = None) -> object:
            Body.reads += 1
            return super().get(key, default)

    known = InputValues(Body(messages=[{"content": "Alice"}]), {"<P_1>": "Bob"})
    assert Body.reads == 0
    assert "alice" in known and "BOB" in known and "carol" not in known and " " not in known
    assert Body.reads == 1


def test_stream_skips_values_from_the_input_split_anywhere(scanner: PiiScanner) -> None:
    email, new = "billing.team@example.org", "someone.else@example.net"
    text = FILLER + f"Contact {email} or {new} now. " + FILLER
    known = InputValues({"messages": [{"role": "user", "content": f"my mail is {email}"}]}, {})
    expected = text.replace(new, "<EMAIL_ADDRESS>")
    start = text.index(email)
    for split in range(start, text.index(new) + len(new) + 1):
        f = StreamFilter({}, scanner, WORDS, False, known=known)
        out, _ = _stream(f, [text[:split], text[split:]])
        assert out == expected and f.findings == {"EMAIL_ADDRESS": 1}, split


def test_flagged_values_split_at_every_point_counted_once(scanner: PiiScanner) -> None:
    email = "billing.team@example.org"
    text = FILLER + "Contact " + email + " about Project X now. " + FILLER
    config = OutputFilter(pii_action="flag", blocked=[TERM])
    start = text.index(email)
    for split in range(start, text.index("Project X") + 10):
        f = StreamFilter({}, scanner, config, False)
        out, lag = _stream(f, [text[:split], text[split:]])
        assert out == text and f.findings == {"EMAIL_ADDRESS": 1, "blocked:term": 1}, split
        assert f.redactions == 0 and f.verdict().outcome == "flag"


@pytest.mark.parametrize("seed", range(6))
def test_stream_equals_whole_response_with_flags(scanner: PiiScanner, seed: int) -> None:
    rng = random.Random(seed)
    pieces = [FILLER, "mail ops@example.com, ", "Project X ships; ", "call +44 20 7946 0958; ", "<EMAIL_ADDRESS_1> "]
    text = "".join(rng.sample(pieces, len(pieces)) * 2)
    config = OutputFilter(pii_action="flag", blocked=[TERM, SECRET.model_copy(update={"pattern": "ships"})])
    whole = _filter(text, scanner, config)
    f = StreamFilter(MAPPING, scanner, config, True)
    out, _ = _stream(f, _random_chunks(text, rng))
    assert out == _content(whole) and f.findings == whole.findings and f.redactions == whole.redactions


@pytest.fixture(scope="module")
def two_tier() -> tuple[PiiScanner, PiiScanner]:
    """(full, fast): TOKEN stands for an entity only the full (NER) scanner finds."""
    from infra.presidio import build_analyzer

    analyzer = build_analyzer([CustomRecognizer(entity="TOKEN", pattern=r"TKN[a-f]+Z", score=0.9)])
    full = PiiScanner(analyzer, [*DEFAULT_ENTITIES, "TOKEN"], 0.4, patterns=[r"TKN[a-f]+Z"])
    return full, PiiScanner(analyzer, DEFAULT_ENTITIES, 0.4)


def test_prose_is_released_without_a_scan(scanner: PiiScanner) -> None:
    f = StreamFilter({}, scanner, OutputFilter(), False)
    out, lag = _stream(f, _random_chunks(FILLER * 4, random.Random(2), largest=4))
    assert out == FILLER * 4 and lag <= len("overall,") + 4  # an unfinished word, at most
    assert f.scans == 0  # nothing in prose could be a value: no scanner runs


def test_two_tier_scans_catch_both_kinds_split_anywhere(two_tier: tuple[PiiScanner, PiiScanner]) -> None:
    full, fast = two_tier
    config = OutputFilter(window_chars=40, hold_words=True)
    token = "TKN" + "a" * 30 + "Z"
    email = "x" * 20 + "@example.com"
    text = FILLER + token + " and " + email + " " + FILLER
    expected = FILLER + "<TOKEN> and <EMAIL_ADDRESS> " + FILLER
    for size in (1, 3, 7, 11, 19, 23):
        for offset in range(size):
            f = StreamFilter({}, full, config, False, fast_scanner=fast)
            out, _ = _stream(f, [text[:offset]] + [text[i : i + size] for i in range(offset, len(text), size)])
            assert out == expected and f.findings == {"TOKEN": 1, "EMAIL_ADDRESS": 1}, (size, offset)


def test_the_full_scanner_runs_only_on_released_capitals(two_tier: tuple[PiiScanner, PiiScanner]) -> None:
    full, fast = two_tier
    one = StreamFilter({}, full, OutputFilter(), False)  # the full scanner for everything
    two = StreamFilter({}, full, OutputFilter(), False, fast_scanner=fast)
    chunks = _random_chunks(FILLER * 8, random.Random(3), largest=4)
    assert _stream(one, chunks)[0] == _stream(two, chunks)[0] == FILLER * 8
    # one full scan per sentence (its capital "The") and the flush, against one per release
    assert two.full_scans == two.scans <= 9 < 5 * 9 < one.scans


def test_filter_verdict_outcomes() -> None:
    assert (filter_verdict({}, 0, False).outcome, filter_verdict({}, 0, False).score) == ("pass", 0.0)
    assert filter_verdict({"EMAIL_ADDRESS": 2}, 0, False).outcome == "flag"
    assert filter_verdict({"EMAIL_ADDRESS": 2}, 1, False).outcome == "redact"
    blocked = filter_verdict({"blocked:key": 1}, 0, True, 1.23456)
    assert (blocked.outcome, blocked.score, blocked.findings, blocked.duration_ms) == (
        "block", 1.0, {"blocked:key": 1}, 1.235)
    assert (blocked.guardrail, blocked.kind, blocked.phase) == ("output_filter", "output_filter", "output")
