"""Result values become JSON-safe (pure)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address
from uuid import UUID

from infra.clickhouse.jsonsafe import json_safe, json_safe_row


def test_scalars() -> None:
    uid = UUID("01890a5d-ac96-774b-bcce-b302099a8057")
    row = [
        uid,
        datetime(2026, 1, 2, 3, 4, 5, 678000),
        datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))),
        date(2026, 1, 2),
        Decimal("0.001250000"),
        None,
        float("nan"),
        float("inf"),
        1.5,
        2**70,
        True,
        b"ab\xff",
        IPv4Address("10.0.0.1"),
    ]
    assert json_safe_row(row) == [
        "01890a5d-ac96-774b-bcce-b302099a8057",
        "2026-01-02T03:04:05.678000Z",
        "2026-01-02T03:04:05Z",
        "2026-01-02",
        "0.001250000",
        None,
        None,
        None,
        1.5,
        2**70,
        True,
        "ab\\xff",
        "10.0.0.1",
    ]
    json.dumps(json_safe_row(row), allow_nan=False)


def test_containers() -> None:
    value = {"a": [Decimal("1.5"), (1, "x")], 2: {None: datetime(2026, 1, 1, tzinfo=UTC)}, True: 1}
    assert json_safe(value) == {"a": ["1.5", [1, "x"]], "2": {"null": "2026-01-01T00:00:00Z"}, "true": 1}
