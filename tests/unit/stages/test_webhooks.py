"""Webhooks, the pure part: the callback allow-list and its tricks, signing and verifying, backoff, retryable."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from stages.webhooks import WebhookSignatureError, backoff_s, retryable, sign, url_allowed, verify

PATTERNS = ["https://hooks.example.com/", "https://*.example.com/hooks/", "http://127.0.0.1:8080/",
            "https://api.example.org/cb"]
SECRET = b"whsec-test"
BODY = b'{"id":"req_1","status":"completed"}'
WEBHOOK_ID = "wh_0192f1"
NOW = 1_800_000_000


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/",
    "https://hooks.example.com",  # no path: "/"
    "https://HOOKS.Example.COM/anything/deeper?x=1",
    "https://hooks.example.com:443/x",  # the default port, explicit
    "https://eu.example.com/hooks/done",  # wildcard, one label
    "https://eu.example.com/hooks/",
    "http://127.0.0.1:8080/result",
    "https://api.example.org/cb",  # exact path
    "https://api.example.org/cb/123",  # below it, on a segment boundary
])
def test_allowed_urls(url: str) -> None:
    assert url_allowed(url, PATTERNS)


@pytest.mark.parametrize("url", [
    "https://hooks.example.com.evil.com/",  # host prefix trick
    "https://hooks.example.com@evil.com/",  # userinfo: the host is evil.com
    "https://user:pw@hooks.example.com/",  # userinfo on an allowed host
    "https://hooks.example.com\\@evil.com/",  # backslash userinfo trick
    "https://evilhooks.example.com/",  # not the listed host, nor under /hooks/
    "https://eu.example.com/hooks-evil",  # path prefix without the segment boundary
    "https://eu.example.com/hooks",  # the pattern's directory is /hooks/
    "https://api.example.org/cbx",  # segment boundary for a pattern without a trailing slash
    "https://a.b.example.com/hooks/x",  # '*' is one label, not several
    "https://example.com/hooks/x",  # '*' is one label, not none
    "https://eu.example.com/hooks/../admin",  # dot segments
    "https://eu.example.com/hooks/%2e%2e/admin",  # encoded dot segments
    "https://eu.example.com/hooks/..%2fadmin",
    "http://hooks.example.com/",  # scheme must match
    "https://hooks.example.com:8443/",  # port must match
    "http://127.0.0.1/",  # default port 80 is not 8080
    "http://127.0.0.1:8081/",
    "http://127.0.0.2:8080/",
    "ftp://hooks.example.com/",
    "javascript:alert(1)",
    "//hooks.example.com/",
    "hooks.example.com/",
    "https://hooks.example.com:99999/",  # unparsable port
    "https://hooks.example.com:x/",
    "https://[::1/",  # unparsable
    "https://hooks.exa\tmple.com/",  # urlsplit would drop the tab: refused before
    "https://hooks.example.com\n/",
    "https://hooks.example.com./",  # trailing dot: not the same spelling
    "https://hooks。example.com/",  # non-ASCII full stop
    "",
])
def test_refused_urls(url: str) -> None:
    assert not url_allowed(url, PATTERNS)


def test_no_patterns_allow_nothing_and_bad_patterns_match_nothing() -> None:
    assert not url_allowed("https://hooks.example.com/", [])
    assert not url_allowed("ftp://hooks.example.com/", ["ftp://hooks.example.com/"])
    assert url_allowed("http://[::1]:9000/cb", ["http://[::1]:9000/"])


def test_sign_is_the_documented_hmac() -> None:
    header = sign(SECRET, NOW, WEBHOOK_ID, BODY)
    digest = hmac.new(SECRET, f"{WEBHOOK_ID}.{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={digest}"


def test_verify_roundtrip_records_the_id() -> None:
    seen: set[str] = set()
    verify(SECRET, sign(SECRET, NOW, WEBHOOK_ID, BODY), WEBHOOK_ID, BODY, now=NOW + 5, tolerance_s=300, seen=seen)
    assert seen == {WEBHOOK_ID}


def reason(header: str, *, body: bytes = BODY, webhook_id: str = WEBHOOK_ID, secret: bytes = SECRET,
           now: int = NOW, seen: set[str] | None = None) -> str:
    with pytest.raises(WebhookSignatureError) as caught:
        verify(secret, header, webhook_id, body, now=now, tolerance_s=300, seen=seen)
    return caught.value.reason


def test_tampered_body_wrong_secret_or_other_id_fail() -> None:
    header = sign(SECRET, NOW, WEBHOOK_ID, BODY)
    assert reason(header, body=BODY.replace(b"completed", b"failed")) == "signature"
    assert reason(header, secret=b"another-secret") == "signature"
    assert reason(header, webhook_id="wh_other") == "signature"
    # the timestamp is signed: moving it forward breaks the signature
    assert reason(header.replace(f"t={NOW}", f"t={NOW + 1}")) == "signature"


def test_old_and_future_timestamps_fail() -> None:
    assert reason(sign(SECRET, NOW - 301, WEBHOOK_ID, BODY)) == "too_old"
    assert reason(sign(SECRET, NOW + 301, WEBHOOK_ID, BODY)) == "in_future"
    for edge in (NOW - 300, NOW + 300):  # the window's edges pass
        verify(SECRET, sign(SECRET, edge, WEBHOOK_ID, BODY), WEBHOOK_ID, BODY, now=NOW, tolerance_s=300)


def test_replay_is_refused_and_a_forgery_does_not_poison_seen() -> None:
    seen: set[str] = set()
    header = sign(SECRET, NOW, WEBHOOK_ID, BODY)
    assert reason(header, secret=b"wrong", seen=seen) == "signature"
    assert seen == set()
    verify(SECRET, header, WEBHOOK_ID, BODY, now=NOW, tolerance_s=300, seen=seen)
    assert reason(header, seen=seen) == "replay"
    # a fresh attempt of the same delivery (new time, same id) is a replay too
    assert reason(sign(SECRET, NOW + 10, WEBHOOK_ID, BODY), now=NOW + 10, seen=seen) == "replay"


@pytest.mark.parametrize("header", [
    "", "garbage", "t=abc,v1=" + "0" * 64, f"v1={'0' * 64}", f"t={NOW}", f"t={NOW},v1=zz",
    f"t={NOW},v1={'0' * 63}", f"t={NOW},t={NOW},v1={'0' * 64}", f"t=-{NOW},v1={'0' * 64}",
    f"t=²,v1={'0' * 64}", f"t={NOW},v1={'é' * 64}",
])
def test_malformed_headers(header: str) -> None:
    assert reason(header) == "malformed"


def test_a_rotated_secret_passes_with_either_signature() -> None:
    old = sign(b"old-secret", NOW, WEBHOOK_ID, BODY)
    new = sign(SECRET, NOW, WEBHOOK_ID, BODY)
    both = f"{new},{old.split(',')[1]}"
    verify(SECRET, both, WEBHOOK_ID, BODY, now=NOW, tolerance_s=300)
    verify(b"old-secret", both, WEBHOOK_ID, BODY, now=NOW, tolerance_s=300)
    assert reason(both, secret=b"third") == "signature"


def test_the_error_is_a_value_error() -> None:
    assert issubclass(WebhookSignatureError, ValueError)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 9, 12, 200])
def test_backoff_is_full_jitter_under_a_capped_exponential(attempt: int) -> None:
    ceiling = min(300.0, 1.0 * 2 ** (attempt - 1))
    assert backoff_s(attempt, 1.0, 300.0, lambda: 0.0) == 0.0
    assert backoff_s(attempt, 1.0, 300.0, lambda: 0.5) == pytest.approx(ceiling / 2)
    top = backoff_s(attempt, 1.0, 300.0, lambda: 0.999999)
    assert ceiling * 0.99 < top <= ceiling
    rng = random.Random(attempt)
    draws = [backoff_s(attempt, 1.0, 300.0, rng.random) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in draws)
    assert min(draws) < 0.1 * ceiling  # full jitter, not "equal jitter"


def test_backoff_ceilings_double_then_cap() -> None:
    assert [backoff_s(n, 0.5, 5.0, lambda: 1.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(("status", "again"), [
    (None, True), (408, True), (409, True), (425, True), (429, True), (500, True), (502, True), (503, True),
    (599, True), (400, False), (401, False), (403, False), (404, False), (410, False), (413, False),
    (422, False), (301, False), (302, False), (307, False), (200, False), (204, False),
])
def test_retryable(status: int | None, again: bool) -> None:
    assert retryable(status) is again
