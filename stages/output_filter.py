"""Output filter: PII the model produced, blocked patterns, and placeholder restoration.

On each choice's text, as the provider sent it (placeholders still in it): PII found is replaced by
``<ENTITY_TYPE>`` (``pii_action: redact``), blocks the answer (``block``) or is only recorded
(``flag``: counted in the findings, text left as it is); then each blocked pattern is replaced by
``[REDACTED:<name>]``, blocks, or is recorded, by its own ``action``; then placeholders are restored
from the request's map. All matches are taken on the provider's text; overlapping replacements merge
into one. A match lying inside a placeholder of the map is never a finding.

Only PII *the input did not contain* is a finding: a value that occurs in the request's input
(``InputValues``: the texts of the body the provider saw, where values redaction left in clear still
are, and the values of the placeholder map; compared case-insensitively) is the caller's own and is
left alone. The check runs only on findings, so an answer without PII costs nothing more. Blocked
patterns apply whatever the input held. Tool-call arguments only get placeholders restored
(JSON-escaped), in whole responses and in streams (``StreamFilter.push_arguments``).

Streaming (``StreamFilter``) releases text as soon as no value can still reach back into it: it holds
only the tail that could still become (part of) a match (``stages/stream_holdback.py``: an unfinished
word, a chain of digits, an IBAN, capitalised words under the NER engine, a partial match of a blocked
pattern or custom recognizer) and never cuts inside a detected value (flagged ones included, so each is
counted once) or a placeholder (complete, or an unterminated ``<PLACEHOL`` tail). Prose goes out with
the chunk that completes it, so a stream keeps the provider's cadence. The hold is bounded by
``window_chars``: a value up to that long is caught however the chunks split it (a detected value
straddling the bound is held whole until it has passed).

Scans. Before text is released, the emitted context and the held text are scanned, unless nothing in
the held text could be a value (the PII scanner's exact pre-filter, ``PiiScanner.candidates``, and no
blocked pattern): prose costs no scan at all. With the ``ner`` engine a stream given a ``fast_scanner``
(pattern and custom entities only, on an analyzer without spaCy) runs the full scanner only when the
released text has a capital letter (names, places and organisations are capitalised; ``DATE_TIME``, which
the model also finds in lower-case words, makes every release a full scan), the fast one otherwise; the
spans a full scan found of the entities only it finds are kept until the next full scan. Scans are
synchronous: on a busy replica a NER scan delays the other streams' chunks by its duration (≈ 1.5–2.5 ms
for a ~130-character text measured here), roughly once per sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.config import OutputFilter
from schemas.errors import ContentBlocked
from schemas.guardrails import Outcome, Verdict
from stages.pii import PiiScanner
from stages.redaction import PLACEHOLDER
from stages.stream_holdback import HoldBack

SpanAction = Literal["redact", "block", "flag"]
_LOWER_CASE_NER = frozenset({"DATE_TIME"})
"""Entities the NER model finds in lower-case text too (``yesterday``): released text always gets a full scan."""


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    kind: str
    marker: str
    action: SpanAction


@dataclass(slots=True)
class _Tally:
    findings: dict[str, int] = field(default_factory=dict)
    redactions: int = 0
    blocked_by: str | None = None


@dataclass(frozen=True, slots=True)
class FilterResult:
    response: dict[str, Any]
    findings: dict[str, int]
    """{kind: count}: entity types, and ``blocked:<name>`` for blocked patterns (flagged ones included)."""
    blocked: ContentBlocked | None
    redactions: int


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class InputValues:
    """What the request's input contained: every text of its messages as the provider saw them, and
    the values of its placeholder map. ``value in input_values`` is a case-insensitive substring test.
    The texts are joined at the first question only, i.e. when a scan has found something."""

    def __init__(self, body: Mapping[str, Any] | None, mapping: Mapping[str, str]) -> None:
        self._body = body
        self._mapping = mapping
        self._text: str | None = None

    def _joined(self) -> str:
        if self._text is None:
            parts = list(_strings(self._body.get("messages"))) if self._body else []
            parts += [v for v in self._mapping.values() if v]
            self._text = "\n".join(parts).casefold()
        return self._text

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        needle = value.strip().casefold()
        return bool(needle) and needle in self._joined()


NO_INPUT = InputValues(None, {})


def _blocked_error(kind: str) -> ContentBlocked:
    return ContentBlocked(f"The response was blocked by the output filter ({kind}).")


class _Rules:
    def __init__(self, mapping: dict[str, str], scanner: PiiScanner, config: OutputFilter, restore: bool,
                 known: InputValues | None, fast_scanner: PiiScanner | None = None) -> None:
        self.scanner = scanner
        self.fast_scanner = fast_scanner or scanner
        self.slow_kinds = frozenset(scanner.entities) - frozenset(self.fast_scanner.entities)
        self.scan_pii = config.enabled and config.pii_action != "off"
        self.pii_action: SpanAction = "redact" if config.pii_action == "off" else config.pii_action
        self.patterns = [(p, re.compile(p.pattern)) for p in config.blocked] if config.enabled else []
        self.active = self.scan_pii or bool(self.patterns)
        self.known = known if known is not None else InputValues(None, mapping)
        self.protected, self.mapping = mapping, (mapping if restore else {})
        self.longest_placeholder = max(map(len, self.mapping), default=0)
        self.prefixes = {ph[:i] for ph in self.mapping for i in range(1, len(ph))}

    def spans(self, text: str, base: int, full: bool = True) -> list[_Span]:
        """Every match in ``text`` (which starts at offset ``base``), sorted by start, longest first;
        ``full=False``: PII from the fast scanner only."""
        spans: list[_Span] = []
        if self.scan_pii:
            scanner = self.scanner if full else self.fast_scanner
            spans += [
                _Span(base + f.start, base + f.end, f.entity_type, f"<{f.entity_type}>", self.pii_action)
                for f in scanner.find(text)
                if text[f.start : f.end] not in self.known
            ]
        for pattern, regex in self.patterns:
            kind = f"blocked:{pattern.name}"
            spans += [
                _Span(base + m.start(), base + m.end(), kind, f"[REDACTED:{pattern.name}]", pattern.action)
                for m in regex.finditer(text)
                if m.end() > m.start()
            ]
        if spans and self.protected and "<" in text:
            inside = [
                (base + m.start(), base + m.end())
                for m in PLACEHOLDER.finditer(text)
                if m.group(0) in self.protected
            ]
            spans = [s for s in spans if not any(a <= s.start and s.end <= b for a, b in inside)]
        spans.sort(key=lambda s: (s.start, -s.end))
        return spans

    def restore(self, text: str) -> str:
        if not self.mapping or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), text)

    def render(self, text: str, base: int, lo: int, hi: int, spans: list[_Span], tally: _Tally) -> str:
        """``text[lo:hi]`` (absolute offsets; ``text`` starts at ``base``) with spans replaced (flagged
        ones only counted)."""
        pieces: list[str] = []
        pos = lo
        for span in spans:
            if span.end <= lo or span.start >= hi:
                continue
            tally.findings[span.kind] = tally.findings.get(span.kind, 0) + 1
            if span.action == "block" and tally.blocked_by is None:
                tally.blocked_by = span.kind
            if span.action == "flag":
                continue
            start = max(span.start, lo)
            if start < pos:  # overlaps the previous replacement: one merged replacement
                pos = max(pos, min(span.end, hi))
                continue
            pieces.append(self.restore(text[pos - base : start - base]))
            pieces.append(span.marker)
            tally.redactions += 1
            pos = min(span.end, hi)
        pieces.append(self.restore(text[pos - base : hi - base]))
        return "".join(pieces)

    def restore_arguments(self, arguments: str) -> str:
        """Placeholders in a JSON text (tool-call arguments) restored as JSON-escaped values."""
        if not self.mapping or "<" not in arguments:
            return arguments

        def value(m: re.Match[str]) -> str:
            found = self.mapping.get(m.group(0))
            return m.group(0) if found is None else json.dumps(found, ensure_ascii=False)[1:-1]

        return PLACEHOLDER.sub(value, arguments)


def _filter_message(message: dict[str, Any], rules: _Rules, tally: _Tally) -> dict[str, Any]:
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str) and content:
        spans = rules.spans(content, 0) if rules.active else []
        out["content"] = rules.render(content, 0, 0, len(content), spans, tally)
    tool_calls = message.get("tool_calls")
    if rules.mapping and isinstance(tool_calls, list):
        calls = []
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                function = {**function, "arguments": rules.restore_arguments(function["arguments"])}
                call = {**call, "function": function}
            calls.append(call)
        out["tool_calls"] = calls
    return out


def filter_response(
    response: dict[str, Any],
    *,
    mapping: dict[str, str],
    scanner: PiiScanner,
    config: OutputFilter,
    restore: bool,
    known: InputValues | None = None,
) -> FilterResult:
    """A filtered copy of a ``chat.completion`` dict; ``response`` is not mutated. ``known``: what the
    input contained (default: the map's values only)."""
    rules = _Rules(mapping, scanner, config, restore, known)
    tally = _Tally()
    choices = response.get("choices")
    if (not rules.active and not rules.mapping) or not isinstance(choices, list):
        return FilterResult(response, {}, None, 0)
    new_choices: list[Any] = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            choice = {**choice, "message": _filter_message(message, rules, tally)}
        new_choices.append(choice)
    blocked = _blocked_error(tally.blocked_by) if tally.blocked_by else None
    return FilterResult({**response, "choices": new_choices}, tally.findings, blocked, tally.redactions)


def filter_verdict(findings: Mapping[str, int], redactions: int, blocked: bool,
                   duration_ms: float = 0.0) -> Verdict:
    """The output filter's own verdict: ``block`` > ``redact`` > ``flag`` (findings only recorded) >
    ``pass``; findings are counts by kind, never values."""
    outcome: Outcome = ("block" if blocked else "redact" if redactions else "flag" if findings else "pass")
    return Verdict(guardrail="output_filter", kind="output_filter", phase="output", outcome=outcome,
                   score=1.0 if findings else 0.0, findings=dict(findings), duration_ms=round(duration_ms, 3))


@dataclass(slots=True)
class _Stream:
    text: str = ""  # raw text from absolute offset `base`: emitted context, then the held text
    base: int = 0
    emitted: int = 0
    spans: list[_Span] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.base + len(self.text)

    @property
    def held(self) -> str:
        return self.text[self.emitted - self.base :]


class StreamFilter:
    """The output filter over a streamed answer, per choice ``index``; one instance per response.

    ``push`` returns what is safe to emit now, ``finish`` flushes a choice. Both raise
    ``ContentBlocked`` when a block action triggers (and keep raising it afterwards).
    """

    def __init__(
        self,
        mapping: dict[str, str],
        scanner: PiiScanner,
        config: OutputFilter,
        restore: bool,
        *,
        known: InputValues | None = None,
        fast_scanner: PiiScanner | None = None,
    ) -> None:
        rules = self._rules = _Rules(mapping, scanner, config, restore, known, fast_scanner)
        self.window = config.window_chars if rules.active else 0
        self.hold = HoldBack.of(
            scanner.entities if rules.scan_pii else (), [p.pattern for p, _ in rules.patterns],
            scanner.patterns if rules.scan_pii else (), hold_words=config.hold_words)
        self._names_need_full = bool(rules.slow_kinds & _LOWER_CASE_NER)
        self.context = max(config.window_chars, 64)
        self.scans = 0
        self.full_scans = 0
        self._streams: dict[int, _Stream] = {}
        self._arguments: dict[tuple[int, int], str] = {}  # (choice, tool call) -> a held placeholder's start
        self._tally = _Tally()
        self._blocked: ContentBlocked | None = None

    @property
    def max_value_chars(self) -> int:
        """Values up to this long are caught however the chunks split them (a longer one is released
        in part once the hold reaches the window)."""
        return self.window

    @property
    def findings(self) -> dict[str, int]:
        return dict(self._tally.findings)

    @property
    def redactions(self) -> int:
        return self._tally.redactions

    @property
    def blocked(self) -> bool:
        return self._blocked is not None

    def verdict(self, duration_ms: float = 0.0) -> Verdict:
        return filter_verdict(self._tally.findings, self._tally.redactions, self.blocked, duration_ms)

    def push(self, index: int, text: str) -> str:
        if self._blocked is not None:
            raise self._blocked
        rules = self._rules
        if not rules.active and not rules.mapping:
            return text
        stream = self._streams.setdefault(index, _Stream())
        stream.text += text
        if not rules.active:  # placeholders only
            return self._emit(stream, self._safe_cut(stream, stream.total))
        held = stream.held
        cut = max(stream.emitted + self.hold.start(held), stream.total - self.window)
        if cut <= stream.emitted:
            return ""
        released = held[: cut - stream.emitted]
        full = self._names_need_full or (bool(rules.slow_kinds) and released.lower() != released)  # capitals
        if full or rules.patterns or rules.fast_scanner.candidates(held):
            self._scan(stream, full=full)
        return self._emit(stream, self._safe_cut(stream, cut))

    def finish(self, index: int) -> str:
        if self._blocked is not None:
            raise self._blocked
        stream = self._streams.pop(index, None)
        if stream is None:
            return ""
        if self._rules.active and stream.total > stream.emitted:
            self._scan(stream, full=True)
        return self._emit(stream, stream.total)

    def push_arguments(self, choice: int, call: int, text: str) -> str:
        """A fragment of a tool call's streamed arguments (JSON text) with the request's placeholders
        restored, JSON-escaped; a placeholder split across fragments is held until it is whole."""
        rules = self._rules
        if not rules.mapping:
            return text
        key = (choice, call)
        text = self._arguments.pop(key, "") + text
        cut = len(text)
        p = text.rfind("<", max(0, cut - rules.longest_placeholder + 1))
        if p >= 0 and text[p:] in rules.prefixes:
            cut = p
            self._arguments[key] = text[p:]
        return rules.restore_arguments(text[:cut])

    def finish_arguments(self, choice: int) -> dict[int, str]:
        """What is still held of a choice's tool-call arguments, by tool call (an unfinished placeholder
        prefix: it was no placeholder)."""
        done = [key for key in self._arguments if key[0] == choice]
        return {key[1]: self._arguments.pop(key) for key in done}

    def _scan(self, stream: _Stream, full: bool) -> None:
        """Find the matches in the emitted context and the held text. A scan without the full scanner
        (names) keeps what the last full one found of the entities only it finds."""
        rules = self._rules
        full = full or not rules.slow_kinds
        spans = rules.spans(stream.text, stream.base, full)
        self.scans += 1
        if full:
            self.full_scans += 1
        else:
            spans += [s for s in stream.spans if s.kind in rules.slow_kinds]
            spans.sort(key=lambda s: (s.start, -s.end))
        stream.spans = [s for s in spans if s.end > stream.emitted]

    def _safe_cut(self, stream: _Stream, cut: int) -> int:
        """Move ``cut`` left until it is inside no match and no (possibly unterminated) placeholder."""
        moved = True
        while moved and cut > stream.emitted:
            moved = False
            for span in stream.spans:
                start = max(span.start, stream.emitted)
                if start < cut < span.end:
                    cut, moved = start, True
            placeholder = self._placeholder_across(stream, cut)
            if placeholder is not None and placeholder < cut:
                cut, moved = placeholder, True
        return cut

    def _placeholder_across(self, stream: _Stream, cut: int) -> int | None:
        """Start of a placeholder of the map (or of a prefix of one ending the text) across ``cut``."""
        rules = self._rules
        if not rules.mapping:
            return None
        lo = max(stream.emitted, cut - rules.longest_placeholder + 1) - stream.base
        p = stream.text.rfind("<", lo, cut - stream.base)
        if p < 0:
            return None
        fragment = stream.text[p : p + rules.longest_placeholder]
        absolute = stream.base + p
        if any(fragment.startswith(ph) and absolute + len(ph) > cut for ph in rules.mapping):
            return absolute
        if absolute + len(fragment) == stream.total and fragment in rules.prefixes:
            return absolute
        return None

    def _emit(self, stream: _Stream, cut: int) -> str:
        if cut <= stream.emitted:
            return ""
        out = self._rules.render(stream.text, stream.base, stream.emitted, cut, stream.spans, self._tally)
        if self._tally.blocked_by is not None:
            self._blocked = _blocked_error(self._tally.blocked_by)
            self._streams.clear()
            raise self._blocked
        stream.emitted = cut
        keep_from = max(stream.base, cut - self.context)
        stream.text = stream.text[keep_from - stream.base :]
        stream.base = keep_from
        stream.spans = [s for s in stream.spans if s.end > cut]
        return out
