"""Request metadata at the edge: user, tags, routing headers; and their way into the envelope and records."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingress import relay
from ingress.anthropic_surface import parse_messages_request
from ingress.app import Ingress
from ingress.metadata import (
    MAX_HEADER_VALUE_CHARS,
    MAX_HEADERS,
    RequestMetadata,
    is_routing_header,
    parse_tags,
    read_metadata,
    read_user,
    routing_headers,
)
from schemas.config import GatewayConfig, hash_api_key
from schemas.errors import InvalidRequest
from schemas.events import RequestCompleted
from schemas.sealed_request import open_request
from schemas.sealing import new_key
from schemas.wire import decode


def scope(*headers: tuple[str, str | bytes]) -> dict[str, Any]:
    raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers]
    return {"type": "http", "headers": raw}


def bad_tags(value: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as raised:
        parse_tags(value)
    return raised.value


# -- user -----------------------------------------------------------------------------------------


def test_user_header_wins_over_the_body() -> None:
    meta = read_metadata(scope(("x-gateway-user", " alice ")), {"user": "bob"})
    assert meta.user == "alice"


def test_user_falls_back_to_the_body_then_empty() -> None:
    assert read_metadata(scope(), {"user": "bob"}).user == "bob"
    assert read_metadata(scope(("x-gateway-user", "  ")), {"user": "bob"}).user == "bob"
    assert read_metadata(scope(), {}).user == ""
    assert read_user(None, {"user": 42}) == ""  # not a string: ignored, not stringified


def test_anthropic_metadata_user_id_reaches_the_canonical_body() -> None:
    raw = orjson.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                        "metadata": {"user_id": "anthropic-user-7"}})
    body, _ = parse_messages_request(raw)
    assert read_metadata(scope(), body).user == "anthropic-user-7"


def test_user_header_is_utf8_and_bounded() -> None:
    assert read_metadata(scope(("x-gateway-user", "zoë".encode())), {}).user == "zoë"
    with pytest.raises(InvalidRequest) as raised:
        read_user("u" * 257, {})
    assert (raised.value.status_code, raised.value.param, raised.value.code) == (400, "x-gateway-user", "invalid_user")


# -- tags -----------------------------------------------------------------------------------------


def test_tags_absent_is_empty() -> None:
    assert parse_tags(None) == {}
    assert read_metadata(scope(), {}).tags == {}


def test_tags_strings_numbers_and_booleans() -> None:
    raw = '{"team": "search", "feature.v2": "auto-complete", "n": 3, "ratio": 0.5, "beta": true, "off": false}'
    assert parse_tags(raw) == {"team": "search", "feature.v2": "auto-complete", "n": "3", "ratio": "0.5",
                               "beta": "true", "off": "false"}
    assert parse_tags("{}") == {}


def test_tags_limits_are_inclusive() -> None:
    tags = {f"k{i}": "v" * 256 for i in range(32)}
    tags["x" * 64] = tags.pop("k0")
    assert parse_tags(orjson.dumps(tags).decode()) == tags


def test_tags_are_read_as_utf8() -> None:
    meta = read_metadata(scope(("x-gateway-tags", '{"city": "Zürich"}'.encode())), {})
    assert meta.tags == {"city": "Zürich"}


@pytest.mark.parametrize(("raw", "why"), [
    ("not json", "not valid JSON"),
    ("", "not valid JSON"),
    ('["a"]', "must be a JSON object"),
    ('"team"', "must be a JSON object"),
    ('{"team": null}', "is null"),
    ('{"team": ["a"]}', "is an array"),
    ('{"team": {"a": 1}}', "is an object"),
    ('{"": "x"}', "tag name ''"),
    ('{"has space": "x"}', "tag name 'has space'"),
    ('{"ключ": "x"}', "tag name"),
    ('{"' + "k" * 65 + '": "x"}', "1-64 characters"),
    ('{"team": "' + "v" * 257 + '"}', "longer than 256"),
    ("{" + ", ".join(f'"k{i}": "v"' for i in range(33)) + "}", "at most 32 tags"),
])
def test_bad_tags_are_a_400_naming_the_header(raw: str, why: str) -> None:
    error = bad_tags(raw)
    assert why in error.message
    body = error.to_body()["error"]
    assert body["type"] == "invalid_request_error"
    assert (error.status_code, body["param"], body["code"]) == (400, "x-gateway-tags", "invalid_tags")


def test_bad_tags_header_fails_read_metadata() -> None:
    with pytest.raises(InvalidRequest, match="x-gateway-tags"):
        read_metadata(scope(("x-gateway-tags", "team=search")), {})


# -- routing headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "x-api-key", "x-goog-api-key", "x-auth-token", "x-authorization", "x-csrf-token", "x-client-secret",
    "x-session-cookie", "x-hub-signature", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256",
    "x-gateway-tags", "x-db-password", "x-credential-id", "authorization", "cookie", "content-type",
])
def test_credentials_and_non_x_headers_never_travel(name: str) -> None:
    assert not is_routing_header(name)


@pytest.mark.parametrize("name", [
    "x-gateway-session-id", "x-gateway-user", "x-gateway-timeout-ms", "x-region", "x-stainless-lang",
    "x-request-id", "x-forwarded-for",
])
def test_plain_x_headers_travel(name: str) -> None:
    assert is_routing_header(name)


def test_routing_headers_lowercased_truncated_first_value() -> None:
    raw = [(b"X-Region", b"eu-west"), (b"x-region", b"us-east"), (b"x-long", b"a" * 1000),
           (b"x-api-key", b"sk-secret"), (b"authorization", b"Bearer sk"), (b"x-gateway-session-id", b"s-1")]
    headers = routing_headers(raw)
    assert headers == {"x-region": "eu-west", "x-long": "a" * MAX_HEADER_VALUE_CHARS,
                       "x-gateway-session-id": "s-1"}
    assert "sk-secret" not in repr(headers) and "Bearer" not in repr(headers)


def test_at_most_32_headers_and_our_own_are_kept() -> None:
    raw = [(f"x-h{i:02d}".encode(), b"v") for i in range(40)] + [(b"x-gateway-session-id", b"sess")]
    headers = routing_headers(raw)
    assert len(headers) == MAX_HEADERS
    assert headers["x-gateway-session-id"] == "sess"
    assert [n for n in headers if n != "x-gateway-session-id"] == [f"x-h{i:02d}" for i in range(31)]


def test_read_metadata_collects_everything() -> None:
    s = scope(("authorization", "Bearer sk-1"), ("x-gateway-user", "carol"),
              ("x-gateway-tags", '{"team": "ml"}'), ("x-gateway-session-id", "abc"), ("x-api-key", "sk-2"))
    assert read_metadata(s, {"user": "ignored"}) == RequestMetadata(
        user="carol", tags={"team": "ml"},
        headers={"x-gateway-user": "carol", "x-gateway-session-id": "abc"},
    )


# -- wiring: ingress puts it in the envelope and in its own records ------------------------------

KEY = "sk-test-metadata"


class FakeJetStream:
    """Requests go to GW_REQ (``published``); ingress's own records to GW_EVENTS (``records``)."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, dict[str, str]]] = []
        self.records: list[bytes] = []

    async def publish(self, subject: str, payload: bytes, *, headers: dict[str, str], **_: Any) -> None:
        if subject.startswith("gw.evt."):
            self.records.append(payload)
        else:
            self.published.append((payload, headers))


class FakeNats:
    def __init__(self, js: FakeJetStream) -> None:
        self.js = js
        self.is_connected = True

    def jetstream(self) -> FakeJetStream:
        return self.js


def make_ingress() -> tuple[Ingress, FakeJetStream, FakeNats]:
    config = GatewayConfig.model_validate(
        {"keys": [{"id": "k1", "key_sha256": hash_api_key(KEY), "tenant": "acme"}]}
    )
    ingress = Ingress(config, "nats://unused", envelope_key=new_key())
    js = FakeJetStream()
    nc = FakeNats(js)
    ingress._js = js  # type: ignore[assignment]
    ingress._nc = nc  # type: ignore[assignment]
    ingress.probe.missing = []  # every stage has a live replica
    return ingress, js, nc


async def post(ingress: Ingress, *headers: tuple[str, str]) -> list[dict[str, Any]]:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "body-user"})
    s = scope(("authorization", f"Bearer {KEY}"), ("x-gateway-timeout-ms", "20"), *headers)
    s.update({"path": "/v1/chat/completions", "method": "POST"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await ingress(s, receive, send)
    await ingress.records._flush_all()  # ingress's own records are queued, then published
    return sent


async def test_ingress_puts_metadata_in_the_envelope_and_its_timeout_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay, "DEADLINE_GRACE_S", 0.0)
    ingress, js, nc = make_ingress()
    sent = await post(ingress, ("x-gateway-tags", '{"team": "ml", "n": 1}'), ("x-gateway-session-id", "s-9"),
                      ("x-api-key", "sk-leak"), ("x-gateway-user", "dave"))
    assert sent[0]["status"] == 504  # nobody answers the fake broker: ingress times out itself
    (envelope,) = [open_request(p, headers, ingress.envelope_key) for p, headers in js.published]
    assert envelope.user == "dave" and envelope.tags == {"team": "ml", "n": "1"}
    assert envelope.headers == {"x-gateway-timeout-ms": "20", "x-gateway-session-id": "s-9", "x-gateway-user": "dave"}
    (record,) = [decode(p, RequestCompleted) for p in js.records]
    assert (record.user, record.tags, record.tenant) == ("dave", {"team": "ml", "n": "1"}, "acme")


async def test_bad_tags_are_refused_and_recorded_with_the_body_user() -> None:
    ingress, js, nc = make_ingress()
    sent = await post(ingress, ("x-gateway-tags", "[1, 2]"))
    assert sent[0]["status"] == 400
    error = orjson.loads(sent[1]["body"])["error"]
    assert (error["param"], error["code"], error["type"]) == ("x-gateway-tags", "invalid_tags", "invalid_request_error")
    assert js.published == []
    (record,) = [decode(p, RequestCompleted) for p in js.records]
    assert (record.status_code, record.error_code, record.user, record.tags) == (400, "invalid_tags", "body-user", {})
