"""Turn clickhouse-connect result values into JSON-safe values (what ``gateway sql`` returns).

- UUID -> str, canonical lower-case;
- DateTime, DateTime64 -> str, ISO-8601 in UTC ending in ``Z`` (``2026-01-02T03:04:05.678000Z``);
- Date, Date32 -> str ``YYYY-MM-DD``;
- Decimal(P, S) -> str, exact (``"0.001250000"``); parse with ``decimal.Decimal`` not float;
- Float32/64 -> float; NaN and +-inf (not representable in JSON) -> ``null``;
- (U)Int8..256 -> int, exact (readers in JavaScript lose precision past 2^53);
- Bool -> bool; String -> str; FixedString or invalid UTF-8 (bytes) -> str, bad bytes escaped;
- IPv4, IPv6 -> str; Array, Tuple -> list; Map -> object with str keys (all recursively);
- NULL -> ``null``; anything else -> ``str(value)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeAlias
from uuid import UUID

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"


def _datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # naive datetimes from clickhouse-connect are UTC (its default tz_mode "naive_utc")
    return value.isoformat() + "Z"


def json_safe(value: Any) -> JsonValue:
    """One value, recursively; see the module table."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):  # before date: datetime is a date
        return _datetime(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else None  # "0.000000000", never "0E-9"
    if isinstance(value, UUID | date | time | IPv4Address | IPv6Address | timedelta):
        return value.isoformat() if isinstance(value, date | time) else str(value)
    if isinstance(value, dict):
        return {_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value)


def _key(key: Any) -> str:
    safe = json_safe(key)
    if isinstance(safe, str):
        return safe
    if safe is None or isinstance(safe, bool):
        return "null" if safe is None else "true" if safe else "false"
    return str(safe)


def json_safe_row(row: Sequence[Any]) -> list[JsonValue]:
    return [json_safe(v) for v in row]
