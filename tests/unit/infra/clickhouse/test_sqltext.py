"""The SQL splitter behind ``gateway sql`` and the migrations (pure, no engine)."""

from __future__ import annotations

import pytest

from infra.clickhouse.migrate import MIGRATIONS_DIR, discover
from infra.clickhouse.sqltext import UnterminatedSQL, split_statements


def test_split_respects_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String DEFAULT 'semi;colon', `we;ird` UInt8) ENGINE = Memory;
    /* block ; /* nested ; */ still comment ; */
    SELECT "quoted;ident", 'it''s; fine', 'back\\'slash;' FROM a;
    # hash comment ; drop
    #! shebang-ish ; drop
    SELECT 3;;
    """
    statements = split_statements(sql)
    assert [s.leading_keyword for s in statements] == ["CREATE", "SELECT", "SELECT"]
    assert "'semi;colon'" in statements[0].text
    assert "'it''s; fine'" in statements[1].text
    assert "DROP" not in " ".join(s.code.upper() for s in statements)


def test_split_unterminated_quote_raises() -> None:
    with pytest.raises(UnterminatedSQL):
        split_statements("SELECT 'oops")
    with pytest.raises(UnterminatedSQL):
        split_statements("SELECT 1 /* never closed")


def test_bare_hash_is_not_a_comment() -> None:
    # ClickHouse treats only "# " and "#!" as comments; "#x" must not hide the rest of the line
    assert len(split_statements("SELECT 1 #x; DROP TABLE t")) == 2


def test_init_migration_splits_into_its_statements() -> None:
    (init,) = [m for m in discover() if m.version == 1]
    statements = split_statements(init.sql)
    assert len(statements) == len(init.statements) == 4
    assert [s.leading_keyword for s in statements] == ["CREATE"] * 4
    assert init.path.parent == MIGRATIONS_DIR
