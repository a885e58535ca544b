"""The tightest request and token limits among a request's scopes."""

from __future__ import annotations

from schemas.governance import RateLimitStatus
from stages.governance.status import tightest


def test_tightest_status() -> None:
    a = RateLimitStatus(limit_requests=10, remaining_requests=5, reset_requests_s=3.0)
    b = RateLimitStatus(limit_requests=100, remaining_requests=2, reset_requests_s=1.0, limit_tokens=50,
                        remaining_tokens=40, reset_tokens_s=2.0)
    out = tightest([a, None, b])
    assert out == RateLimitStatus(limit_requests=100, remaining_requests=2, reset_requests_s=1.0, limit_tokens=50,
                                  remaining_tokens=40, reset_tokens_s=2.0)
    assert tightest([None]) is None
