"""OpenAI's x-ratelimit-* headers from a request's rate-limit status."""

from __future__ import annotations

from ingress.ratelimit_headers import duration, ratelimit_headers
from schemas.governance import RateLimitStatus


def test_duration_reads_like_openais() -> None:
    assert [duration(s) for s in (0, 0.02, 0.9994, 1.0, 1.2, 59.5, 60, 360, 3725)] == [
        "0s", "20ms", "999ms", "1s", "2s", "1m0s", "1m0s", "6m0s", "1h2m5s"]


def test_only_the_limits_that_apply() -> None:
    assert ratelimit_headers(None) == []
    requests_only = RateLimitStatus(limit_requests=120, remaining_requests=7, reset_requests_s=12.0)
    assert ratelimit_headers(requests_only) == [
        (b"x-ratelimit-limit-requests", b"120"), (b"x-ratelimit-remaining-requests", b"7"),
        (b"x-ratelimit-reset-requests", b"12s")]
    tokens_only = RateLimitStatus(limit_tokens=1000, remaining_tokens=0, reset_tokens_s=0.25)
    assert dict(ratelimit_headers(tokens_only)) == {
        b"x-ratelimit-limit-tokens": b"1000", b"x-ratelimit-remaining-tokens": b"0",
        b"x-ratelimit-reset-tokens": b"250ms"}
