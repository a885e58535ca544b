"""`gateway sql` without a reachable NATS fails with a clear message instead of retrying forever."""

from __future__ import annotations

import asyncio

import pytest

from infra.nats_server import free_port
from infra.operator.sql_client import SqlError, run_query
from infra.settings import Settings


async def test_unreachable_nats_is_a_clear_error_not_a_hang() -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SqlError) as raised:
        # the guard only turns a hang (the bug: reconnecting forever) into a failure
        await asyncio.wait_for(run_query(Settings(nats_url=url), "SELECT 1"), timeout=60)
    assert "cannot reach the gateway's NATS" in str(raised.value) and url in str(raised.value)
