"""The read-only guard of ``gateway sql``: one read statement, or a clear refusal.

First layer, text: after stripping comments and whitespace the input must be exactly one statement
whose first keyword is SELECT, WITH, SHOW, DESCRIBE, DESC, EXPLAIN or EXISTS (a leading ``(`` is
allowed, as in ``(SELECT 1) UNION ALL (SELECT 2)``), and must not contain ``INTO OUTFILE`` (chDB
writes that file even in readonly mode). Second layer, engine: the store runs the statement on a
connection whose session has ``readonly = 1`` (see ``store.py``), which ClickHouse and chDB enforce
for writes, DDL, SYSTEM, setting changes and file/url/executable table functions.

Multi-statement input is refused outright: chDB executes every statement of ``SELECT 1; DROP ...``.
"""

from __future__ import annotations

from infra.clickhouse.sqltext import Statement, UnterminatedSQL, split_statements
from schemas.errors import InvalidRequest, PermissionDenied

ALLOWED_KEYWORDS: frozenset[str] = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"}
)
_ALLOWED_TEXT = "SELECT, WITH, SHOW, DESCRIBE, DESC, EXPLAIN, EXISTS"


class ReadOnlyViolation(PermissionDenied):
    """The statement would change something; ``statement_kind`` names what was refused."""

    default_code = "read_only"

    def __init__(self, statement_kind: str, message: str) -> None:
        super().__init__(message)
        self.statement_kind = statement_kind


def _refuse(kind: str, why: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(
        kind, f"gateway sql is read-only: {why}. Only one {_ALLOWED_TEXT} statement is accepted."
    )


def check_readonly(sql: str) -> Statement:
    """Return the single read-only statement in ``sql`` or raise.

    Raises ``ReadOnlyViolation`` (HTTP 403, code ``read_only``) for anything that is not one read
    statement, and ``InvalidRequest`` for empty input or an unterminated quote/comment.
    """
    try:
        statements = split_statements(sql)
    except UnterminatedSQL as exc:
        raise InvalidRequest(f"gateway sql could not read the query: {exc}", code="invalid_sql") from exc
    if not statements:
        raise InvalidRequest("gateway sql got an empty query", code="empty_query")
    if len(statements) > 1:
        kinds = [s.leading_keyword or "?" for s in statements]
        refused = next((k for k in kinds if k not in ALLOWED_KEYWORDS), None)
        detail = f" including a {refused} statement" if refused else ""
        raise _refuse(
            "MULTI_STATEMENT",
            f"multi-statement input refused ({len(statements)} statements: {'; '.join(kinds)}){detail}",
        )
    statement = statements[0]
    words = statement.keywords()
    kind = words[0] if words else "?"
    if kind not in ALLOWED_KEYWORDS:
        raise _refuse(kind, f"{kind} statements are refused")
    for first, second in zip(words, words[1:], strict=False):
        if first == "INTO" and second == "OUTFILE":
            raise _refuse("INTO OUTFILE", "SELECT ... INTO OUTFILE writes a file and is refused")
    return statement
