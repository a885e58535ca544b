"""Bedrock Converse: the shared contract, with streams as AWS event-stream frames instead of SSE.

Stream fixtures list ``frames`` (``{"event": type, "payload": {...}}`` or ``{"exception": type, ...}``),
encoded here by a small independent encoder (prelude, CRC32s, string headers); request fixtures carry
``credentials``, and their ``authorization`` header is checked against a stdlib SigV4 implementation."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import struct
import urllib.parse
import zlib
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import pytest
from pydantic import TypeAdapter

import schemas.config
from schemas.config_providers import _ProviderBase
from schemas.errors import AuthenticationFailed, GatewayError, ProviderError
from stages.providers.base import ProviderAdapter, SseEvent
from stages.providers.bedrock import BedrockAdapter, sigv4_headers
from stages.providers.bedrock_stream import BedrockEventStreamParser
from stages.providers.registry import ADAPTERS
from stages.providers.sse import SseParser

from .contract_base import ProviderContract, assemble, assert_subset

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class LocalBedrockProvider(_ProviderBase):
    """The config shape ``schemas.config.BedrockProvider`` has, for as long as it is not there."""

    type: Literal["bedrock"]
    region: str
    base_url: str = ""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


# ---------------------------------------------------------------------------------------------------
# An independent event-stream encoder and SigV4 signer (stdlib only)


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def encode_frames(frames: list[dict[str, Any]]) -> bytes:
    out = b""
    for f in frames:
        payload = json.dumps(f["payload"]).encode()
        if "exception" in f:
            headers = {":message-type": "exception", ":exception-type": f["exception"]}
        else:
            headers = {":message-type": "event", ":event-type": f["event"]}
        out += frame({**headers, ":content-type": "application/json"}, payload)
    return out


def parse(raw: bytes, piece: int = 7) -> list[SseEvent]:
    parser = BedrockEventStreamParser()
    events: list[SseEvent] = []
    for start in range(0, len(raw), piece):
        events += parser.feed(raw[start : start + piece])
    return events + parser.flush()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def stdlib_sigv4(url: str, headers: dict[str, str], body: bytes, secret: str, scope: str) -> str:
    """SigV4 from the spec: non-S3 paths are URI-encoded again; every header given is signed (with host)."""
    parts = urllib.parse.urlsplit(url)
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items() if k.lower() != "authorization"}
    signed["host"] = parts.netloc
    names = sorted(signed)
    canonical = "\n".join([
        "POST",
        urllib.parse.quote(parts.path, safe="/-_.~"),
        "",
        "".join(f"{n}:{signed[n]}\n" for n in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    date, region, service, _ = scope.split("/")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------------


class TestBedrockContract(ProviderContract):
    provider_type = "bedrock"
    adapter_class = BedrockAdapter
    config: ClassVar[dict[str, Any]] = {"type": "bedrock", "region": "us-west-2", "headers": {"x-gateway-test": "1"}}
    auth_header = "authorization"

    @property
    def adapter(self) -> ProviderAdapter:
        return BedrockAdapter(now=lambda: NOW)

    def provider(self, **overrides: Any) -> Any:
        model = getattr(schemas.config, "BedrockProvider", LocalBedrockProvider)
        return TypeAdapter(model).validate_python({**self.config, **overrides})

    def test_registry_returns_this_adapter(self) -> None:
        if "bedrock" not in ADAPTERS:
            pytest.skip("the registry line for bedrock is not in yet")
        assert isinstance(ADAPTERS["bedrock"], BedrockAdapter)

    # -- requests: exact bytes, signed ----------------------------------------------------------------

    def test_request_fixtures(self) -> None:
        for name, fx in self.fixtures("request"):
            body = fx["body"]
            before = copy.deepcopy(body)
            call = self.adapter.to_provider_request(self.provider(), fx["model"], body, stream=fx["stream"],
                                                    api_key=None, credentials=fx["credentials"])
            assert body == before, f"{name}: the canonical body was mutated"
            assert call.method == "POST" and call.url == fx["expected"]["url"], name
            assert call.json == fx["expected"]["json"], name
            assert call.content is not None and json.loads(call.content) == call.json, name
            headers = dict(call.headers)
            authorization = headers.pop("authorization")
            assert headers == fx["expected"]["headers"], name
            scope = "20240501/us-west-2/bedrock/aws4_request"
            signature = stdlib_sigv4(call.url, headers, call.content, fx["credentials"]["secret_access_key"], scope)
            assert authorization == (
                f"AWS4-HMAC-SHA256 Credential={fx['credentials']['access_key_id']}/{scope}, "
                f"SignedHeaders={';'.join(sorted([*headers, 'host']))}, Signature={signature}"
            ), name

    def test_aws_published_sigv4_vector_get_vanilla(self) -> None:
        # aws-sig-v4-test-suite "get-vanilla": GET / on example.amazonaws.com, service "service".
        headers = sigv4_headers(
            "GET", "https://example.amazonaws.com/", {}, b"", access_key_id="AKIDEXAMPLE",
            secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token=None,
            region="us-east-1", service="service", when=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
        )
        assert headers == {
            "x-amz-date": "20150830T123600Z",
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        }

    def test_signature_covers_every_body_byte_and_the_time(self) -> None:
        common: dict[str, Any] = {"access_key_id": "AK", "secret_access_key": "SK", "session_token": None,
                                  "region": "eu-west-1", "service": "bedrock"}
        url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m/converse"
        base = sigv4_headers("POST", url, {}, b'{"a":1}', when=NOW, **common)["authorization"]
        assert "Credential=AK/20240501/eu-west-1/bedrock/aws4_request" in base
        assert sigv4_headers("POST", url, {}, b'{"a":2}', when=NOW, **common)["authorization"] != base
        later = NOW.replace(second=1)
        assert sigv4_headers("POST", url, {}, b'{"a":1}', when=later, **common)["authorization"] != base

    def test_time_is_taken_per_call(self) -> None:
        times = iter([NOW, NOW.replace(minute=5)])
        adapter = BedrockAdapter(now=lambda: next(times))
        creds = {"access_key_id": "AK", "secret_access_key": "SK"}
        body = {"messages": [{"role": "user", "content": "x"}]}
        first = adapter.to_provider_request(self.provider(), "m", body, stream=False, api_key=None, credentials=creds)
        second = adapter.to_provider_request(self.provider(), "m", body, stream=False, api_key=None, credentials=creds)
        assert first.headers["x-amz-date"] == "20240501T120000Z"
        assert second.headers["x-amz-date"] == "20240501T120500Z"

    def test_api_key_without_aws_keys_is_a_bearer_bedrock_api_key(self) -> None:
        body = {"messages": [{"role": "user", "content": "x"}]}
        call = self.adapter.to_provider_request(self.provider(), "m", body, stream=False, api_key="bedrock-key")
        assert call.headers["authorization"] == "Bearer bedrock-key"
        assert "x-amz-date" not in call.headers

    def test_half_a_key_pair_is_refused(self) -> None:
        body = {"messages": [{"role": "user", "content": "x"}]}
        with pytest.raises(AuthenticationFailed) as raised:
            self.adapter.to_provider_request(self.provider(), "m", body, stream=False, api_key=None,
                                             credentials={"access_key_id": "AK"})
        assert raised.value.code == "provider_auth_failed"

    def test_configured_headers_are_signed_and_cannot_replace_signing_headers(self) -> None:
        provider = self.provider(headers={"X-Tenant": "acme", "Authorization": "nope", "X-Amz-Date": "nope"})
        body = {"messages": [{"role": "user", "content": "x"}]}
        call = self.adapter.to_provider_request(provider, "m", body, stream=False, api_key=None,
                                                credentials={"access_key_id": "AK", "secret_access_key": "SK"})
        assert call.headers["X-Tenant"] == "acme"
        assert {k.lower() for k in call.headers} == {"x-tenant", "content-type", "x-amz-date", "authorization"}
        assert "SignedHeaders=content-type;host;x-amz-date;x-tenant," in call.headers["authorization"]

    def test_base_url_overrides_the_regional_endpoint(self) -> None:
        call = self.adapter.to_provider_request(
            self.provider(base_url="http://127.0.0.1:8090/"), "m", {"messages": []}, stream=True, api_key=None
        )
        assert call.url == "http://127.0.0.1:8090/model/m/converse-stream"

    # -- streams: binary frames -----------------------------------------------------------------------

    def test_stream_fixtures(self) -> None:
        for name, fx in self.stream_fixtures():
            chunks, state = self.decode(parse(encode_frames(fx["frames"])), fx.get("model", "m"))
            assert state.finished, f"{name}: the terminal event did not finish the stream"
            result = assemble(chunks)
            assert_subset(fx["expected"], result, name)
            expected_usage = fx["expected"]["usage"]
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == expected_usage, name
            assert state.prompt_tokens == expected_usage["prompt_tokens"], name
            assert state.finish_reason == result["choices"][-1]["finish_reason"], name

    def test_stream_decodes_the_same_in_any_piece_size(self) -> None:
        for name, fx in self.stream_fixtures():
            raw = encode_frames(fx["frames"])
            whole, _ = self.decode(parse(raw, piece=1 << 20))
            for piece in (1, 3, 64):
                pieces, _ = self.decode(parse(raw, piece=piece))
                strip = [{k: v for k, v in c.items() if k != "created"} for c in pieces]
                assert strip == [{k: v for k, v in c.items() if k != "created"} for c in whole], name

    def test_cut_stream_is_not_finished(self) -> None:
        for name, fx in self.stream_fixtures():
            _, state = self.decode(parse(encode_frames(fx["frames"][:-1])))
            assert not state.finished, f"{name}: finished at messageStop, without metadata"
            raw = encode_frames(fx["frames"])
            _, state = self.decode(parse(raw[: len(raw) - 5]))
            assert not state.finished, f"{name}: a stream cut inside its last frame finished"

    def test_in_band_stream_errors_raise(self) -> None:
        fixtures = [(n, fx) for n, fx in self.fixtures("stream") if "error" in fx]
        assert fixtures, "no stream fixture with an in-band error"
        for name, fx in fixtures:
            with pytest.raises(GatewayError) as raised:
                self.decode(parse(encode_frames(fx["frames"])))
            self.check_error(name, raised.value, fx["error"])

    def test_error_frames_raise(self) -> None:
        raw = frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b"")
        events = parse(raw)
        assert events == [SseEvent("error", '{"code": "InternalFailure", "message": "boom"}')]
        with pytest.raises(ProviderError) as raised:
            self.decode(events)
        assert raised.value.retryable and "InternalFailure: boom" in raised.value.message

    def test_corrupt_frame_raises(self) -> None:
        raw = bytearray(encode_frames([{"event": "messageStart", "payload": {"role": "assistant"}}]))
        raw[20] ^= 0xFF
        with pytest.raises(ProviderError) as raised:
            parse(bytes(raw))
        assert raised.value.code == "provider_bad_stream"

    def test_unknown_events_emit_nothing_and_metadata_before_stop_does_not_finish(self) -> None:
        decoder = self.adapter.stream_decoder(model="m", request_id="r")
        assert decoder.feed(SseEvent("futureEvent", "{}")) == []
        assert decoder.feed(SseEvent("metadata", '{"usage": {"inputTokens": 1, "outputTokens": 1}}')) == []
        assert not decoder.state.finished

    def test_stream_parser_is_the_event_stream_one(self) -> None:
        assert isinstance(self.adapter.stream_parser(), BedrockEventStreamParser)


@pytest.mark.parametrize("provider_type", sorted(t for t in ADAPTERS if t != "bedrock"))
def test_sse_providers_parse_sse(provider_type: str) -> None:
    parser = ADAPTERS[provider_type].stream_parser()
    assert isinstance(parser, SseParser)
    assert parser is not ADAPTERS[provider_type].stream_parser()  # a fresh one per stream
