"""``schemas.wire``: the JSON payload type carried as is."""

from __future__ import annotations

from schemas.envelope import Envelope, Reply, StreamPiece
from schemas.wire import decode, encode, json_list, json_object

BODY = {"model": "m", "n": None, "stream": True, "temperature": 0.5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "tools": []}


def test_a_json_payload_round_trips_untouched() -> None:
    envelope = Envelope(request_id="r", received_at=1.0, deadline=2.0, reply_to="x", model_requested="m",
                        body=BODY, response={"choices": [{"message": {"content": "ok"}}], "usage": None})
    data = encode(envelope)
    back = decode(data, Envelope)
    assert back.body == BODY and back.response == envelope.response and encode(back) == data
    piece = StreamPiece(request_id="r", seq=0, chunk={"choices": [{"delta": {"content": "a"}}]})
    assert decode(encode(piece), StreamPiece) == piece
    reply = Reply(kind="response", request_id="r", body={"id": 1, "x": [1.5, "a", None, {"k": False}]})
    assert decode(encode(reply), Reply) == reply


def test_the_accessors_narrow_without_trusting() -> None:
    assert json_list([1, "a"]) == [1, "a"] and json_list("ab") == [] and json_list(None) == []
    assert json_object({"a": 1}) == {"a": 1} and json_object([1]) == {} and json_object(3) == {}
