"""`gateway audit verify`'s own parts: --since, the report as text and JSON, the exit codes."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from infra.operator import audit_cli
from infra.operator.audit_cli import as_json, cmd_verify, parse_since, render
from infra.settings import Settings
from schemas.audit import GENESIS, AuditEntry, AuditRow, extend
from schemas.audit_verify import Anchor, verify
from schemas.wire import replace


def chain(n: int) -> list[AuditRow]:
    actors = ("nats:admin", "admin-api:alice via nats:ingress", "unauthenticated:cli:ann@box")
    return extend([AuditEntry(entry_id=f"e{i}", ts=10.0 + i, kind="key", actor=actors[i % 3], subject=f"key.{i}",
                              action="created") for i in range(n)], 0, GENESIS)


def test_since_takes_a_seq_or_an_iso_time() -> None:
    assert parse_since("42") == ("seq", 42)
    assert parse_since("2026-12-04T14:00:00Z") == ("ms", 1_796_392_800_000)
    assert parse_since("2026-12-04T15:00:00+01:00") == ("ms", 1_796_392_800_000)
    assert parse_since("2026-12-04 14:00") == ("ms", 1_796_392_800_000)  # UTC unless it says
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_an_intact_report_says_so() -> None:
    rows = chain(3)
    text = render(verify(rows), Anchor(seq=3, hash=rows[-1].hash, ts="2026-12-04 14:00:00"))
    assert text.startswith("audit_log intact: 3 rows, seq 1–3, last hash " + rows[-1].hash)
    assert "latest anchor seq 3" in text


def test_a_broken_report_names_the_first_seq_every_problem_and_what_to_do() -> None:
    rows = chain(4)
    rows[1] = replace(rows[1], actor="mallory")
    del rows[3]
    anchor = Anchor(seq=4, hash="ab" * 32)
    report = verify(rows, anchor=anchor)
    text = render(report, anchor)
    assert text.splitlines()[0].startswith("audit_log BROKEN at seq 2 (altered): seq 2 was altered")
    assert "  seq 4: missing:" in text and "What to do" in text
    body = json.loads(as_json(report, anchor))
    assert body["intact"] is False and [(p["kind"], p["seq"]) for p in body["problems"]] == \
        [("altered", 2), ("missing", 4)]
    assert body["anchor"] == {"seq": 4, "hash": "ab" * 32, "ts": ""}


@pytest.mark.parametrize(("tamper", "code"), [(False, 0), (True, 1)])
def test_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tamper: bool,
                    code: int) -> None:
    rows = chain(3)
    if tamper:
        rows[2] = replace(rows[2], detail='{"x":1}')
    seen: list[Any] = []

    async def load(settings: Settings, since: tuple[str, int] | None) -> tuple[list[AuditRow], Anchor | None]:
        seen.append(since)
        return rows, None

    monkeypatch.setattr(audit_cli, "load", load)
    assert cmd_verify(argparse.Namespace(since="2", json=False)) == code
    assert seen == [("seq", 2)]
    out = capsys.readouterr()
    assert ("BROKEN at seq 3" in out.err) if tamper else ("intact" in out.out)


def test_a_bad_since_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_verify(argparse.Namespace(since="soon", json=False)) == 2
    assert "--since takes a seq or an ISO-8601 time" in capsys.readouterr().err
