"""The rate-limit status an answer reports: the tightest request limit and the tightest token limit
among the scopes a request met (OpenAI's ``x-ratelimit-*`` headers)."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.governance import RateLimitStatus


def tightest(statuses: Iterable[RateLimitStatus | None]) -> RateLimitStatus | None:
    requests: RateLimitStatus | None = None
    tokens: RateLimitStatus | None = None
    for s in statuses:
        if s is None:
            continue
        if s.remaining_requests is not None and (
                requests is None or requests.remaining_requests is None
                or s.remaining_requests < requests.remaining_requests):
            requests = s
        if s.remaining_tokens is not None and (
                tokens is None or tokens.remaining_tokens is None or s.remaining_tokens < tokens.remaining_tokens):
            tokens = s
    if requests is None and tokens is None:
        return None
    return RateLimitStatus(
        limit_requests=requests.limit_requests if requests else None,
        remaining_requests=requests.remaining_requests if requests else None,
        reset_requests_s=requests.reset_requests_s if requests else None,
        limit_tokens=tokens.limit_tokens if tokens else None,
        remaining_tokens=tokens.remaining_tokens if tokens else None,
        reset_tokens_s=tokens.reset_tokens_s if tokens else None,
    )
