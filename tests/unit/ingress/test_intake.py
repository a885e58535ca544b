"""From the HTTP request to the envelope: the key, ``anthropic-version``, the timeout header, the body."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from infra.key_directory import config_directory
from ingress.asgi import Message
from ingress.config_view import ConfigView
from ingress.intake import Intake, authenticate, check_anthropic_version, timeout_s
from ingress.surfaces import ANTHROPIC, OPENAI
from schemas.config import GatewayConfig, hash_api_key
from schemas.errors import AuthenticationFailed, InvalidRequest, PayloadTooLarge

KEY = "sk-intake"
CONFIG = GatewayConfig.model_validate({
    "keys": [{"id": "k1", "key_sha256": hash_api_key(KEY), "tenant": "acme"}],
    "timeouts": {"request_s": 30},
    "limits": {"max_body_bytes": 1024},
})
VIEW = ConfigView.of(CONFIG)
KEYS = config_directory(CONFIG)


def scope(*headers: tuple[str, str]) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.encode(), v.encode()) for k, v in headers]}


def receiving(body: bytes) -> Any:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [(("authorization", f"Bearer {KEY}"),), (("authorization", f"bearer  {KEY} "),),
                                     (("x-api-key", KEY),), (("authorization", f"Basic {KEY}"), ("x-api-key", KEY))])
def test_the_key_is_read_from_bearer_or_x_api_key(headers: tuple[tuple[str, str], ...]) -> None:
    key_hash, key = authenticate(scope(*headers), KEYS)
    assert key_hash == hash_api_key(KEY) and key.id == "k1"


@pytest.mark.parametrize(("headers", "code"), [
    ((), "missing_api_key"),
    ((("authorization", "Bearer "),), "missing_api_key"),
    ((("authorization", "Bearer sk-other"),), "invalid_api_key"),
])
def test_a_missing_or_unknown_key_is_refused(headers: tuple[tuple[str, str], ...], code: str) -> None:
    with pytest.raises(AuthenticationFailed) as raised:
        authenticate(scope(*headers), KEYS)
    assert raised.value.code == code


# -- anthropic-version, timeout -------------------------------------------------------------------


def test_anthropic_version_absent_or_a_date_is_accepted() -> None:
    check_anthropic_version(scope())
    check_anthropic_version(scope(("anthropic-version", "2023-06-01")))


def test_a_malformed_anthropic_version_is_refused() -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_anthropic_version(scope(("anthropic-version", "latest")))
    assert (raised.value.param, raised.value.code) == ("anthropic-version", "invalid_anthropic_version")


def test_the_timeout_header_can_only_shorten_the_configured_one() -> None:
    assert timeout_s(scope(), CONFIG) == 30
    assert timeout_s(scope(("x-gateway-timeout-ms", "1500")), CONFIG) == 1.5
    assert timeout_s(scope(("x-gateway-timeout-ms", "999999")), CONFIG) == 30


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_timeout_header_is_refused(value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        timeout_s(scope(("x-gateway-timeout-ms", value)), CONFIG)
    assert raised.value.param == "x-gateway-timeout-ms"


# -- the envelope ---------------------------------------------------------------------------------


async def test_read_builds_the_envelope() -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    intake = Intake("rid-1", 1000.0)
    s = scope(("authorization", f"Bearer {KEY}"), ("x-gateway-timeout-ms", "2000"), ("x-gateway-user", "dave"))
    envelope = await intake.read(s, receiving(body), OPENAI, VIEW, "gw.reply.ing.rid-1", KEYS)
    assert (envelope.request_id, envelope.received_at, envelope.deadline) == ("rid-1", 1000.0, 1002.0)
    assert (envelope.reply_to, envelope.endpoint, envelope.stream) == ("gw.reply.ing.rid-1", "chat.completions", True)
    assert (envelope.api_key_hash, envelope.model_requested, envelope.user) == (hash_api_key(KEY), "m", "dave")
    assert envelope.body == intake.body and intake.key_hash == hash_api_key(KEY) and intake.meta is not None


async def test_a_refusal_keeps_what_was_read_so_far() -> None:
    intake = Intake("rid-2", 1000.0)
    with pytest.raises(PayloadTooLarge):
        await intake.read(scope(("x-api-key", KEY)), receiving(b"x" * 2048), OPENAI, VIEW, "r", KEYS)
    assert (intake.key_hash, intake.body, intake.meta) == (hash_api_key(KEY), None, None)


async def test_the_anthropic_surface_checks_its_version_header() -> None:
    intake = Intake("rid-3", 1000.0)
    with pytest.raises(InvalidRequest):
        await intake.read(scope(("x-api-key", KEY), ("anthropic-version", "v1")), receiving(b"{}"), ANTHROPIC, VIEW,
                          "r", KEYS)
