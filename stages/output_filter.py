"""Output filter: PII the model produced, blocked patterns, and placeholder restoration.

On each choice's text, as the provider sent it (placeholders still in it): PII found is replaced by
``<ENTITY_TYPE>`` (``pii_action: redact``) or blocks the answer (``block``); then each blocked pattern
is replaced by ``[REDACTED:<name>]`` or blocks; then placeholders are restored from the request's map.
All matches are taken on the provider's text; overlapping ones merge into one replacement. A match
lying inside a placeholder of the map is never a finding. Tool-call arguments only get placeholders
restored (JSON-escaped), in whole responses.

Streaming (``StreamFilter``) holds back the last ``window_chars`` characters of each choice and
never cuts inside a detected value or a placeholder (complete, or an unterminated ``<PLACEHOL`` tail).
It rescans ``emitted context + held text`` every ``scan_every`` characters (default ``window_chars //
4``), so any value of up to ``max_value_chars = window_chars - scan_every + 2`` characters is caught
wherever the chunks split it. Text waits at most ``window_chars`` characters, except a detected value
straddling the window edge, held whole until the window has passed its end.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from schemas.config import OutputFilter
from schemas.errors import ContentBlocked
from stages.pii import PiiScanner
from stages.redaction import PLACEHOLDER


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    kind: str
    marker: str
    block: bool


@dataclass(slots=True)
class _Tally:
    findings: dict[str, int] = field(default_factory=dict)
    redactions: int = 0
    blocked_by: str | None = None


@dataclass(frozen=True, slots=True)
class FilterResult:
    response: dict[str, Any]
    findings: dict[str, int]
    """{kind: count}: entity types, and ``blocked:<name>`` for blocked patterns."""
    blocked: ContentBlocked | None
    redactions: int


def _blocked_error(kind: str) -> ContentBlocked:
    return ContentBlocked(f"The response was blocked by the output filter ({kind}).")


class _Rules:
    def __init__(self, mapping: dict[str, str], scanner: PiiScanner, config: OutputFilter, restore: bool):
        self.scanner = scanner
        self.scan_pii = config.enabled and config.pii_action != "off"
        self.pii_block = config.pii_action == "block"
        self.patterns = [(p, re.compile(p.pattern)) for p in config.blocked] if config.enabled else []
        self.active = self.scan_pii or bool(self.patterns)
        self.protected, self.mapping = mapping, (mapping if restore else {})
        self.longest_placeholder = max(map(len, self.mapping), default=0)
        self.prefixes = {ph[:i] for ph in self.mapping for i in range(1, len(ph))}

    def spans(self, text: str, base: int) -> list[_Span]:
        """Every match in ``text`` (which starts at offset ``base``), sorted by start, longest first."""
        spans: list[_Span] = []
        if self.scan_pii:
            spans += [
                _Span(base + f.start, base + f.end, f.entity_type, f"<{f.entity_type}>", self.pii_block)
                for f in self.scanner.find(text)
            ]
        for pattern, regex in self.patterns:
            kind, block = f"blocked:{pattern.name}", pattern.action == "block"
            spans += [
                _Span(base + m.start(), base + m.end(), kind, f"[REDACTED:{pattern.name}]", block)
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
        """``text[lo:hi]`` (absolute offsets; ``text`` starts at ``base``) with spans replaced."""
        pieces: list[str] = []
        pos = lo
        for span in spans:
            if span.end <= lo or span.start >= hi:
                continue
            tally.findings[span.kind] = tally.findings.get(span.kind, 0) + 1
            if span.block and tally.blocked_by is None:
                tally.blocked_by = span.kind
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
) -> FilterResult:
    """A filtered copy of a ``chat.completion`` dict; ``response`` is not mutated."""
    rules = _Rules(mapping, scanner, config, restore)
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


@dataclass(slots=True)
class _Stream:
    text: str = ""  # raw text from absolute offset `base`: emitted context, then the held text
    base: int = 0
    emitted: int = 0
    scanned: int = 0
    spans: list[_Span] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.base + len(self.text)


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
        scan_every: int | None = None,
    ) -> None:
        self._rules = _Rules(mapping, scanner, config, restore)
        self.window = config.window_chars if self._rules.active else 0
        self.scan_every = max(1, min(scan_every or config.window_chars // 4, config.window_chars))
        self.context = max(config.window_chars, 64)
        self._streams: dict[int, _Stream] = {}
        self._tally = _Tally()
        self._blocked: ContentBlocked | None = None

    @property
    def max_value_chars(self) -> int:
        """Values up to this long are caught however the chunks split them."""
        return self.window - self.scan_every + 2

    @property
    def findings(self) -> dict[str, int]:
        return dict(self._tally.findings)

    @property
    def redactions(self) -> int:
        return self._tally.redactions

    def push(self, index: int, text: str) -> str:
        if self._blocked is not None:
            raise self._blocked
        if not self._rules.active and not self._rules.mapping:
            return text
        stream = self._streams.setdefault(index, _Stream())
        stream.text += text
        total = stream.total
        cut = total - self.window
        if cut <= stream.emitted:
            return ""
        if self._rules.active and total - stream.scanned >= self.scan_every:
            self._scan(stream)
        return self._emit(stream, self._safe_cut(stream, cut))

    def finish(self, index: int) -> str:
        if self._blocked is not None:
            raise self._blocked
        stream = self._streams.pop(index, None)
        if stream is None:
            return ""
        if self._rules.active and stream.scanned < stream.total:
            self._scan(stream)
        return self._emit(stream, stream.total)

    def _scan(self, stream: _Stream) -> None:
        stream.spans = [s for s in self._rules.spans(stream.text, stream.base) if s.end > stream.emitted]
        stream.scanned = stream.total

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
