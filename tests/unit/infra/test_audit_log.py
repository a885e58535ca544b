"""Recording audit entries into the GW_AUDIT stream: on the publisher's identity's subject, stored in
order, a retried entry stored once, a missing stream reported as ``AuditNotRecorded`` naming the change."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.audit_log import record
from schemas.audit import AuditEntry
from schemas.errors import AuditNotRecorded, GatewayError
from tests.support.jetstream import audit_published, jetstream_server

pytestmark = pytest.mark.server


def entry(entry_id: str) -> AuditEntry:
    return AuditEntry(entry_id=entry_id, ts=1.0, kind="budget", actor="cli:ana@box", subject="team.t",
                      action="set", detail={"created": True})


async def test_entries_are_stored_in_order_and_a_repeat_once(tmp_path: Path) -> None:
    async with jetstream_server(tmp_path / "nats") as srv:
        for entry_id in ("a", "b", "a"):
            await record(srv.js, entry(entry_id), "op-ana")
        published = await audit_published(srv.js)
        assert [e.entry_id for _, e in published] == ["a", "b"]
        assert published[0] == ("gw.audit.by.op-ana", entry("a"))  # on the publisher's own subject, as sent


async def test_no_stream_is_an_error_naming_the_change(tmp_path: Path) -> None:
    async with jetstream_server(tmp_path / "bare", declare=False) as srv:
        with pytest.raises(AuditNotRecorded) as raised:
            await record(srv.js, entry("a"), "op-ana", timeout_s=0.5)
    assert isinstance(raised.value, GatewayError) and raised.value.status_code == 503
    assert "budget change set on 'team.t' was made" in raised.value.message
