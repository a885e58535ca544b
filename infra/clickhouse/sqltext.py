"""A small ClickHouse SQL lexer: split statements and strip comments without being fooled by quotes.

Used by the migration runner (split a ``.sql`` file into statements) and by the read-only guard
(one statement only, find its leading keyword, spot ``INTO OUTFILE``). It understands exactly what
can hide a ``;`` or a keyword: ``'single'``, ``"double"`` and ```backtick``` quoted text (with
backslash escapes and doubled quotes), ``-- line``, ``# line`` and ``#!line`` comments, and ``/* block */``
comments (nested, as ClickHouse allows). It does not parse SQL; anything else passes through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTES = "'\"`"
# ClickHouse reads `# ` and `#!` as a line comment; a bare `#x` is a syntax error, not a comment.
_HASH_COMMENT_NEXT = frozenset(" \t\r\n!")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UnterminatedSQL(ValueError):
    """A quote or block comment is not closed: the text cannot be split safely."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement: ``text`` as written (comments kept), ``code`` with comments and quoted text blanked."""

    text: str
    code: str

    def keywords(self) -> list[str]:
        """The unquoted words of the statement, upper-cased, in order (identifiers included)."""
        return [m.group(0).upper() for m in _WORD.finditer(self.code)]

    @property
    def leading_keyword(self) -> str:
        """The first word, skipping opening parentheses (``(SELECT 1) UNION ALL ...``); '' if none."""
        words = self.keywords()
        return words[0] if words else ""


def _skip_quoted(sql: str, i: int) -> int:
    """Return the index just past the quoted text starting at ``sql[i]``."""
    quote = sql[i]
    n = len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:  # doubled quote = literal quote
                j += 2
                continue
            return j + 1
        j += 1
    raise UnterminatedSQL(f"unterminated {quote} quote starting at offset {i}")


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    n = len(sql)
    j = i
    while j < n:
        if sql.startswith("/*", j):
            depth += 1
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise UnterminatedSQL(f"unterminated /* comment starting at offset {i}")


def split_statements(sql: str) -> list[Statement]:
    """Split on top-level ``;``. Empty statements (only whitespace/comments) are dropped."""
    out: list[Statement] = []
    text: list[str] = []
    code: list[str] = []
    i = 0
    n = len(sql)

    def flush() -> None:
        stmt_code = "".join(code).strip()
        if stmt_code:
            out.append(Statement(text="".join(text).strip(), code=stmt_code))
        text.clear()
        code.clear()

    while i < n:
        c = sql[i]
        if c in _QUOTES:
            j = _skip_quoted(sql, i)
            text.append(sql[i:j])
            # keep the quotes so the statement is not empty, blank the content so no keyword hides in it
            code.append(c + " " + c)
            i = j
        elif sql.startswith("--", i) or (c == "#" and (i + 1 == n or sql[i + 1] in _HASH_COMMENT_NEXT)):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            text.append(sql[i:j])
            code.append(" ")
            i = j
        elif sql.startswith("/*", i):
            j = _skip_block_comment(sql, i)
            text.append(sql[i:j])
            code.append(" ")
            i = j
        elif c == ";":
            flush()
            i += 1
        else:
            text.append(c)
            code.append(c)
            i += 1
    flush()
    return out
