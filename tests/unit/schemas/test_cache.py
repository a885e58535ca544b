"""The response cache's contract: the caller's directives, the answer's headers, the tenant and alias in a
key."""

from __future__ import annotations

import pytest

from schemas.cache import belongs, cache_headers, directive_of
from schemas.envelope import Reply
from stages.cache import cache_key

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def test_keys_are_nats_keys_and_purge_finds_a_tenants_and_an_aliass() -> None:
    k = cache_key("ac.me/x y", "gpt-4o:mini", BODY)
    assert all(c.isalnum() or c in "-/_=." for c in k) and k.count(".") == 2
    assert belongs(k) and belongs(k, "ac.me/x y") and belongs(k, "ac.me/x y", "gpt-4o:mini")
    assert belongs(k, alias="gpt-4o:mini") and not belongs(k, "acme") and not belongs(k, "ac.me/x y", "fast")
    assert not belongs("not-a-cache-key")


@pytest.mark.parametrize(("x_cache", "control", "expected"), [
    (None, None, ""), ("no-cache", None, "no-cache"), (" Refresh ", None, "refresh"), ("no-store", None, "no-store"),
    (None, "max-age=0, no-cache", "no-cache"), (None, "no-store", "no-store"), ("bogus", None, ""),
])
def test_directives(x_cache: str | None, control: str | None, expected: str) -> None:
    assert directive_of(x_cache, control) == expected


def test_answer_headers() -> None:
    def reply(cache: str, age: float | None = None) -> Reply:
        return Reply(kind="response", request_id="r", cache=cache, cache_age_s=age)

    assert cache_headers(reply("")) == []
    assert cache_headers(reply("hit", 12.7)) == [(b"x-gateway-cache", b"hit"), (b"age", b"12")]
    assert cache_headers(reply("miss")) == [(b"x-gateway-cache", b"miss")]
    assert cache_headers(reply("refresh")) == [(b"x-gateway-cache", b"miss")]
    assert cache_headers(reply("bypass")) == [(b"x-gateway-cache", b"bypass")]
