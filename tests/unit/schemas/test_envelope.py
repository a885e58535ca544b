"""The envelope: JSON round trip, deadline helpers, immutability."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from schemas.envelope import SCHEMA_VERSION, Envelope, Reply, StreamPiece, Usage
from schemas.errors import RateLimited
from schemas.routing import PlannedTarget, Price
from schemas.wire import ValidationError, convert, decode, encode, replace


def make_envelope(**update: object) -> Envelope:
    values: dict[str, object] = {
        "request_id": "0190f0c4-0000-7000-8000-000000000000",
        "received_at": 1_700_000_000.0,
        "deadline": 1_700_000_120.0,
        "reply_to": "gw.reply.ing.0190f0c4",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "x_extra": [1, {"a": None}]},
        "model_requested": "gpt-4o-mini",
    }
    values.update(update)
    return convert(values, Envelope)


def full_envelope() -> Envelope:
    return make_envelope(
        ack_subject="$JS.ACK.GW_REQ.redaction.1.2.3.4.5",
        delivery=2,
        stream=True,
        api_key_hash="ab" * 32,
        redacted=True,
        vault="sealed-blob",
        redactions={"EMAIL_ADDRESS": 2},
        tenant="acme",
        api_key_id="demo",
        plan=[
            PlannedTarget(provider="p1", model="m1", path="route.children.0", timeout_s=5.0,
                          price=Price(input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.6"))),
            PlannedTarget(provider="p2", model="m2", path="route.children.1", probe=True),
        ],
        provider="p1",
        model_served="m1",
        attempts=3,
        provider_ms=412.5,
        ttfb_ms=88.25,
        usage=Usage(prompt_tokens=10, completion_tokens=5, source="estimated"),
        cost_usd="0.000004500",
        response={"id": "chatcmpl-1", "choices": []},
        output_findings={"PHONE_NUMBER": 1},
        stage_ms={"redaction": 1.5, "policy": 0.1},
    )


def test_json_round_trip_minimal() -> None:
    env = make_envelope()
    assert decode(encode(env), Envelope) == env
    assert env.schema_version == SCHEMA_VERSION


def test_json_round_trip_full() -> None:
    env = full_envelope()
    back = decode(encode(env), Envelope)
    assert back == env
    assert back.plan[0].price is not None
    assert back.plan[0].price.input_per_mtok == Decimal("0.15")
    assert back.usage is not None and back.usage.total_tokens == 15


def test_expired_and_remaining() -> None:
    env = make_envelope(deadline=100.0)
    assert not env.expired(now=99.999)
    assert env.expired(now=100.0)
    assert env.expired(now=101.0)
    assert env.remaining_s(now=90.0) == 10.0
    assert env.remaining_s(now=105.0) == -5.0


def test_expired_uses_wall_clock_by_default() -> None:
    now = time.time()
    assert not make_envelope(deadline=now + 60).expired()
    assert make_envelope(deadline=now - 1).expired()
    assert 59 < make_envelope(deadline=now + 60).remaining_s() <= 60


def test_frozen() -> None:
    env = make_envelope()
    with pytest.raises(AttributeError):
        env.deadline = 0.0  # type: ignore[misc]
    copy = replace(env, tenant="acme")
    assert copy.tenant == "acme" and env.tenant is None


def test_unknown_fields_refused() -> None:
    with pytest.raises(ValidationError, match="surprise"):
        make_envelope(surprise=True)


def test_endpoint_is_constrained() -> None:
    with pytest.raises(ValidationError):
        make_envelope(endpoint="images.generate")


def test_stream_piece_and_reply_round_trip() -> None:
    piece = StreamPiece(request_id="r", seq=3, final=full_envelope(), error=RateLimited("x").info())
    assert decode(encode(piece), StreamPiece) == piece
    reply = Reply(kind="error", request_id="r", delivery=2, status=429, error=RateLimited("x").info())
    assert decode(encode(reply), Reply) == reply
    with pytest.raises(ValidationError, match="kind"):
        decode(b'{"kind": "partial", "request_id": "r"}', Reply)
