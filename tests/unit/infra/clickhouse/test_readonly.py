"""The read-only guard of ``gateway sql`` (pure, no engine)."""

from __future__ import annotations

import pytest

from infra.clickhouse.readonly import ALLOWED_KEYWORDS, ReadOnlyViolation, check_readonly
from schemas.errors import InvalidRequest, PermissionDenied


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select count() from requests  ",
        "WITH 1 AS x SELECT x",
        "SHOW TABLES",
        "DESCRIBE TABLE requests",
        "DESC requests",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE requests",
        "-- leading comment\n/* and a block */ SELECT 1;",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SELECT 'DROP TABLE x; INSERT INTO y' AS s",
        "SELECT `into`, 'outfile' FROM t",
    ],
)
def test_guard_accepts_reads(sql: str) -> None:
    assert check_readonly(sql).leading_keyword in ALLOWED_KEYWORDS


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO events VALUES (1)", "INSERT"),
        ("ALTER TABLE requests DELETE WHERE 1", "ALTER"),
        ("DROP TABLE requests", "DROP"),
        ("CREATE TABLE x (a UInt8) ENGINE = Memory", "CREATE"),
        ("TRUNCATE TABLE events", "TRUNCATE"),
        ("SYSTEM FLUSH LOGS", "SYSTEM"),
        ("OPTIMIZE TABLE requests FINAL", "OPTIMIZE"),
        ("SET readonly = 0", "SET"),
        ("/* SELECT */ DELETE FROM requests WHERE 1", "DELETE"),
        ("-- SELECT 1\nRENAME TABLE a TO b", "RENAME"),
        ("SELECT 1; DROP TABLE x", "MULTI_STATEMENT"),
        ("SELECT 1; SELECT 2", "MULTI_STATEMENT"),
        ("SELECT 1 INTO OUTFILE '/tmp/x.csv'", "INTO OUTFILE"),
    ],
)
def test_guard_refuses_everything_else(sql: str, kind: str) -> None:
    with pytest.raises(ReadOnlyViolation) as err:
        check_readonly(sql)
    assert err.value.statement_kind == kind
    message = str(err.value)
    assert message.startswith("gateway sql is read-only")
    if kind not in ("MULTI_STATEMENT", "INTO OUTFILE"):
        assert f"{kind} statements are refused" in message
    # one error hierarchy: it is a 403 permission error with its own code
    assert isinstance(err.value, PermissionDenied)
    assert err.value.info().status_code == 403
    assert err.value.code == "read_only"


def test_multi_statement_message_names_the_refused_kind() -> None:
    expected = r"multi-statement input refused \(2 statements: SELECT; DROP\)"
    with pytest.raises(ReadOnlyViolation, match=expected):
        check_readonly("SELECT 1; DROP TABLE x")
    with pytest.raises(ReadOnlyViolation, match="including a DROP statement"):
        check_readonly("SELECT 1; DROP TABLE x")


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", ";;"])
def test_guard_empty_input_is_invalid_request(sql: str) -> None:
    with pytest.raises(InvalidRequest, match="empty query"):
        check_readonly(sql)


def test_guard_unterminated_quote_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="could not read the query"):
        check_readonly("SELECT 'x")
