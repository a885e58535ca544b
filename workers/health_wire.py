"""What both sides of live per-target health agree on: the report, the breaker keys, the connection.

Live per-target health over NATS: provider replicas report (``workers/health_reporter.py``), routing
replicas decide (``workers/health_monitor.py``). This module holds what they share, and no state.

The report, published by every provider replica on ``gw.health.report`` (core NATS, fan-out) at most
every ``REPORT_INTERVAL_S``, JSON::

    {"v": 1, "reporter": "provider-12", "boot": "9f2c…", "seq": 41,
     "targets": {"openai/gpt-4o": [ok, fail, ok_ms_sum, ok_ms_count, inflight], …},
     "probes": [["openai/gpt-4o", "ok", 812.5], …]}

``targets`` holds every target whose counts changed since the last report plus every target with
calls in flight: a target absent from a report has none in flight at that reporter. Probe outcomes
are only in ``probes`` (not in the counts).

The circuit breaker's state lives in the GW_BREAKERS key-value bucket, one key per target:
``breaker_key(target_id)``, reversed by ``target_of_key``.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client as NatsClient

REPORT_VERSION = 1
REPORT_INTERVAL_S = 0.1

NatsSource = NatsClient | Callable[[], NatsClient]
"""A connection, or a function returning it (workers build these objects before their broker connects)."""


def connection(source: NatsSource) -> NatsClient:
    return source if isinstance(source, NatsClient) else source()


# -- keys ------------------------------------------------------------------------------------------

_KEY_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def breaker_key(target_id: str) -> str:
    """The GW_BREAKERS key of a target id, reversible and readable: ``openai/gpt-4o`` →
    ``openai.gpt-4o``. Each '/' becomes '.' (a subject token separator, so ``openai.>`` watches one
    provider); every other character outside ``[A-Za-z0-9_-]`` becomes ``=XX`` per UTF-8 byte
    (``gpt-4.1`` → ``gpt-4=2E1``), as does a '/' that would leave an empty token."""
    if not target_id:
        raise ValueError("empty target id")
    out: list[str] = []
    last = len(target_id) - 1
    for i, ch in enumerate(target_id):
        if ch in _KEY_SAFE:
            out.append(ch)
        elif ch == "/" and out and out[-1] != "." and i < last:
            out.append(".")
        else:
            out.extend(f"={b:02X}" for b in ch.encode())
    return "".join(out)


def target_of_key(key: str) -> str:
    """The inverse of ``breaker_key``."""
    buf = bytearray()
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == ".":
            buf += b"/"
            i += 1
        elif ch == "=":
            buf.append(int(key[i + 1:i + 3], 16))
            i += 3
        else:
            buf += ch.encode()
            i += 1
    return buf.decode()
