"""OpenAI's ``x-ratelimit-*`` headers from the rate limits a request met (``Reply.ratelimit``):
``x-ratelimit-limit-requests``, ``-remaining-requests``, ``-reset-requests`` and the ``-tokens`` trio,
each pair only when such a limit applies. Resets read like OpenAI's: ``"20ms"``, ``"1s"``, ``"6m0s"``."""

from __future__ import annotations

import math

from schemas.governance import RateLimitStatus

Header = tuple[bytes, bytes]


def duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: ``"250ms"`` under a second, else whole seconds (``"6m0s"``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def ratelimit_headers(status: RateLimitStatus | None) -> list[Header]:
    if status is None:
        return []
    out: list[Header] = []
    for kind, limit, remaining, reset in (
            ("requests", status.limit_requests, status.remaining_requests, status.reset_requests_s),
            ("tokens", status.limit_tokens, status.remaining_tokens, status.reset_tokens_s)):
        if limit is None:
            continue
        out.append((f"x-ratelimit-limit-{kind}".encode(), str(limit).encode()))
        out.append((f"x-ratelimit-remaining-{kind}".encode(), str(remaining if remaining is not None else 0).encode()))
        out.append((f"x-ratelimit-reset-{kind}".encode(), duration(reset or 0.0).encode()))
    return out
