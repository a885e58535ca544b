"""Today's circuit breaker states for ``gateway replay --dry-run``, read from the ``GW_BREAKERS`` bucket.

Read-only: the dry run only looks (a routing replica's ``admit`` would claim a probe slot, which a dry
run must not take from real traffic). Each stored value names its target (``"target"``), so the keys
need no decoding here. An ``open`` breaker whose cool-down has passed reads ``half_open``: the next
request would probe it (``stages/breaker.py: admission``). Probe slots already taken are not counted:
a half-open target reads ``half_open`` even when its slots are full.

``None`` when the bucket cannot be read (the ``analyst`` identity may not; no gateway has run yet):
the plan then says the states are unknown instead of calling every target healthy.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError

from schemas import subjects


def effective_state(value: Any, now: float) -> str:
    """The state a request would meet: ``closed``, ``open`` or ``half_open``; anything unreadable is
    ``closed`` (as the routing stage reads it)."""
    if not isinstance(value, dict) or value.get("state") not in ("closed", "open", "half_open"):
        return "closed"
    state = str(value["state"])
    if state == "open":
        since, cooldown = value.get("since"), value.get("cooldown_s")
        if isinstance(since, int | float) and isinstance(cooldown, int | float) and now >= since + cooldown:
            return "half_open"
    return state


async def read_breakers(js: JetStreamContext, now: float | None = None) -> dict[str, str] | None:
    """Target id -> effective state for every breaker stored; ``None`` when the bucket is not readable."""
    moment = time.time() if now is None else now
    try:
        kv = await js.key_value(subjects.BUCKET_BREAKERS)
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        states: dict[str, str] = {}
        for key in keys:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:  # deleted since listed
                continue
            if not entry.value:
                continue
            value: Any = orjson.loads(entry.value)
            target = value.get("target") if isinstance(value, dict) else None
            if isinstance(target, str):
                states[target] = effective_state(value, moment)
        return states
    except Exception:  # noqa: BLE001 - not permitted, no bucket, a timeout: the plan says "unknown"
        return None
