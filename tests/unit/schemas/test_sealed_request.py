"""The raw request in GW_REQ: sealed, bound to its message id, opened or refused as unreadable."""

from __future__ import annotations

import pytest

from schemas.envelope import Envelope
from schemas.sealed_request import MSG_ID, REPLY_TO, RequestUnreadable, open_request, seal_request, stand_in
from schemas.sealing import new_key, seal
from schemas.wire import encode

KEY = new_key()
SECRET = "jane.doe@example.com"


def envelope(request_id: str = "0190-r1") -> Envelope:
    return Envelope(request_id=request_id, received_at=1.0, deadline=2.0, reply_to=f"gw.reply.ing1.{request_id}",
                    body={"messages": [{"role": "user", "content": f"mail {SECRET}"}]}, model_requested="m")


def test_sealed_request_hides_the_body_and_opens_back() -> None:
    data, headers = seal_request(envelope(), KEY)
    assert headers == {MSG_ID: "0190-r1", REPLY_TO: "gw.reply.ing1.0190-r1"}
    assert SECRET.encode() not in data and b"jane" not in data and b"messages" not in data
    assert open_request(data, headers, KEY) == envelope()


def test_a_sealed_request_cannot_be_replayed_under_another_id() -> None:
    data, _ = seal_request(envelope(), KEY)
    with pytest.raises(RequestUnreadable, match="envelope key"):
        open_request(data, {MSG_ID: "0190-r2"}, KEY)


@pytest.mark.parametrize("case", ["other key", "tampered", "unsealed", "no id", "id mismatch", "not an envelope"])
def test_what_does_not_open_is_request_unreadable(case: str) -> None:
    data, headers = seal_request(envelope(), KEY)
    key = KEY
    if case == "other key":
        key = new_key()
    elif case == "tampered":
        data = data[:-1] + bytes([data[-1] ^ 1])
    elif case == "unsealed":
        data = encode(envelope())  # an older gateway's plain JSON
    elif case == "no id":
        headers = {}
    elif case == "id mismatch":
        data = seal(encode(envelope("0190-r9")), KEY, aad=b"0190-r1")
    else:
        data = seal(b'{"hello": 1}', KEY, aad=b"0190-r1")
    with pytest.raises(RequestUnreadable) as caught:
        open_request(data, headers, key)
    info = caught.value.info()
    assert (info.status_code, info.code) == (500, "request_unreadable")
    assert "GATEWAY_ENVELOPE_KEY" in info.message


def test_stand_in_comes_from_the_clear_headers_only() -> None:
    out = stand_in({MSG_ID: "0190-r1", REPLY_TO: "gw.reply.ing1.0190-r1"}, now=100.0)
    assert (out.request_id, out.reply_to, out.body, out.redacted) == ("0190-r1", "gw.reply.ing1.0190-r1", {}, False)
    assert out.deadline > out.received_at == 100.0


def test_stand_in_never_answers_to_a_foreign_subject() -> None:
    assert stand_in({MSG_ID: "r1", REPLY_TO: "gw.req.policy"}).reply_to == "gw.reply.unknown.r1"
    assert stand_in(None).request_id  # a fresh id when even that is missing
